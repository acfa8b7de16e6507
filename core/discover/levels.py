"""Hierarchical proposals: a run's clusters merged into a tree (`core.discover.hierarchy`), named at every node
(`core.discover.naming.GroupNamer`), shown one level at a time.

`Hierarchy.fit(X, labels, titles)` builds the tree over the clusters of `labels`, picks the default number of groups
without labels, and ranks name candidates for every node of the tree (a node's candidates do not depend on the
level: a phrase's precision is counted against all of the node's products). `level(k)` gives the k groups of one
level with names distinct from each other and from the node's existing children; groups whose best name is the
same and which are each other's nearest group are shown as one proposal with parts.
"""

from __future__ import annotations

import numpy as np

from core.discover.clustering import NOISE
from core.discover.hierarchy import DEFAULT_K, ClusterTree, build_tree, leaf_sums
from core.discover.naming import (
    WORD,
    Candidate,
    GroupNamer,
    ctfidf,
    distinct_names,
    lemma,
    name_key,
    name_stop_words,
    title_case,
    without_brand,
)
from core.embed.encoders import l2_normalize


class Hierarchy:
    """A named cluster tree.

    Args:
        linkage: "average" (cosine) or "ward" (see `core.discover.hierarchy.build_tree`).
        represent: what the tree merges leaf clusters by: "embedding" (their centroids in X), "ctfidf" (the
            c-TF-IDF rows of their titles, as BERTopic's hierarchical topics) or "combined" (both).
        embedding_weight: the centroids' share of the "combined" cosine.
        default: label-free rule for the default number of groups, "gap" or "silhouette".
        k_min, k_max: range searched for the default.
        merge_typeless: show a group whose titles name no type of their own as a part of its nearest named sibling
            instead of as "Other <node name>"; off by default: on no node did it raise name accuracy (on Shoes the
            nearest sibling of "Other Shoes", mostly casual shoes, is "Canvas Shoes"), BENCHMARKS.md.
        duplicate_neighbours: a group whose best name a larger sibling took is shown as a part of it when that
            sibling is among its this many nearest (1: only its nearest; 3 chosen on the held-out nodes).
        use_descriptions: name groups by their descriptions' openings too (`fit`'s `descriptions`); off by default:
            it helps on H&M Upper and Lower body and hurts H&M Shoes ("Boots" for a Sneakers group), BENCHMARKS.md.
        describe_typeless: a group whose titles name no type of their own (they call its products only by the
            node's name, colours and fillers: "Men Black Shoes") is named by how its products' descriptions qualify
            the node's name most often ("... these casual shoes ..." -> "Casual Shoes", `GroupNamer.count_qualified`), when
            `fit` is given descriptions; such a name counts as the group's own (a near-duplicate of a sibling of the
            same name is shown as its part). Only "Other <node name>" groups change.
        namer: GroupNamer (default GroupNamer()).
        node_name: the name of the node discovered under (never proposed for a group).
        taken: names of the node's existing children (never proposed again).
        seed: random state of the silhouette sample.

    After `fit`: `tree_` (ClusterTree), `default_k_`, `sums_` ((2K - 1, D) member sums of every node), `ranked_`
    ({node: [Candidate, ...]}).
    """

    def __init__(
        self,
        *,
        linkage: str = "average",
        represent: str = "combined",
        embedding_weight: float = 0.3,
        default: str = "gap",
        k_min: int = 2,
        k_max: int = 12,
        merge_typeless: bool = False,
        duplicate_neighbours: int = 3,
        use_descriptions: bool = False,
        describe_typeless: bool = True,
        namer: GroupNamer | None = None,
        node_name: str = "",
        taken: list[str] = (),
        seed: int = 0,
    ):
        self.linkage = linkage
        self.represent = represent
        self.embedding_weight = embedding_weight
        self.default = default
        self.k_min = k_min
        self.k_max = k_max
        self.merge_typeless = merge_typeless
        self.duplicate_neighbours = duplicate_neighbours
        self.use_descriptions = use_descriptions
        self.describe_typeless = describe_typeless
        self.namer = namer or GroupNamer()
        self.node_name = node_name
        self.taken = list(taken)
        self.seed = seed
        self.stored_levels_: dict[str, list[dict]] = {}  # `restore`: the levels the fitted tree gave, by k
        self.described_: dict[int, list[Candidate]] = {}  # `describe_typeless`: names of typeless nodes

    def fit(
        self,
        X: np.ndarray,
        labels: np.ndarray,
        titles: list[str] | None,
        *,
        brands: list[str | None] | None = None,
        descriptions: list[str] | None = None,
    ) -> Hierarchy:
        """Build, cut and name the tree of the clusters of `labels` (N,) over the product vectors X (N, D); `titles`
        and the products' `brands` (removed from their own titles) name the groups, and so do the openings of their
        `descriptions` when given (`core.discover.naming.lead_phrase`: where titles are style names; and groups whose
        titles name no type, see `describe_typeless`)."""
        labels = np.asarray(labels)
        ids, sums, sizes = leaf_sums(X, labels)
        self.labels_ = labels
        vectors = self._leaf_vectors(sums, labels, titles, brands)
        self.tree_ = build_tree(ids, vectors, sizes, linkage=self.linkage, sums=False)
        node_sums = list(sums)
        for a, b in self.tree_.children:
            node_sums.append(node_sums[a] + node_sums[b])
        self.sums_ = np.stack(node_sums) if node_sums else np.zeros((0, X.shape[1]))
        kw = {"k_min": self.k_min, "k_max": self.k_max}
        if self.default == "silhouette":
            self.default_k_ = DEFAULT_K["silhouette"](self.tree_, X, labels, seed=self.seed, **kw)
        else:
            self.default_k_ = DEFAULT_K[self.default](self.tree_, **kw)
        self.ranked_, self.counts_ = {}, None
        self._rank(titles, brands, descriptions if self.use_descriptions else None)
        self._describe_typeless(descriptions if self.describe_typeless else None, brands)
        return self

    def _leaf_vectors(self, sums: np.ndarray, labels: np.ndarray, titles, brands) -> np.ndarray:
        """One vector per leaf cluster: its centroid direction, its titles' c-TF-IDF row, or both side by side
        (weighted so that their cosine is `embedding_weight` * centroid cosine + the rest * c-TF-IDF cosine)."""
        cents = l2_normalize(sums.astype(np.float32))
        if self.represent == "embedding" or titles is None or len(sums) < 2:
            return cents
        texts = [without_brand(t, b) for t, b in zip(titles, brands or [None] * len(titles))]
        _, weights, _ = ctfidf(texts, labels, ngram_range=(1, 2), stop_words=sorted(name_stop_words()))
        rows = l2_normalize(weights.astype(np.float32))
        if self.represent == "ctfidf":
            return rows
        w = self.embedding_weight
        return np.concatenate([np.sqrt(w) * cents, np.sqrt(1 - w) * rows], axis=1)

    def candidates(self, node: int, *, fallback: str | None = None) -> list[Candidate]:
        """The node's name candidates; a node without any (its titles hold nothing but the node's own name,
        colours and fillers: "Men Black Shoes" under Shoes) is `fallback`, by default "Other <node name>"."""
        own = self.ranked_.get(node) or self.described_.get(node, [])
        if own:
            return own
        text = fallback or title_case(f"other {self.node_name.lower()}".strip())
        return [Candidate(name_key(text), text, 0.0, tuple(lemma(w) for w in text.lower().split()))]

    def names(self, nodes: list[int], *, fallback: str | None = None) -> list[dict]:
        """Distinct names of sibling `nodes` (largest first), see `core.discover.naming.distinct_names`; a node whose
        best name a larger sibling took is qualified by the word that most separates it from that sibling. Only
        nodes named by their own titles count as duplicates ("duplicate_of")."""

        def qualify(i: int, j: int | None, best) -> str | None:
            exclude = set(best.key_words)
            word = self._separating_word(nodes[i], None if j is None else nodes[j], exclude=exclude)
            word = word or (self._separating_word(nodes[i], None, exclude=exclude) if j is not None else None)
            return title_case(f"{word} {best.text}") if word else None

        named = distinct_names([self.candidates(n, fallback=fallback) for n in nodes], taken=self.taken, qualify=qualify)
        for n, entry in zip(nodes, named):
            if not (self.ranked_.get(n) or self.described_.get(n)):
                entry["duplicate_of"] = None
                entry["nearest_named"] = self._nearest_named(n, nodes)
        return named

    def _nearest_named(self, node: int, nodes: list[int]) -> int | None:
        """Index in `nodes` of the sibling nearest to `node` (cosine of their member sums) among those named by their
        own titles, or None when there is none."""
        named = [i for i, n in enumerate(nodes) if n != node and self.ranked_.get(n)]
        if not named or not len(self.sums_):
            return None
        unit = self.sums_ / np.maximum(np.linalg.norm(self.sums_, axis=1, keepdims=True), 1e-12)
        sims = unit[[nodes[i] for i in named]] @ unit[node]
        return named[int(np.argmax(sims))]

    def _separating_word(self, node: int, other: int | None, *, exclude: set[str], min_share: float = 0.3) -> str | None:
        """The single title word much more common in `node` than in `other` (None: all the other clusters), as the
        titles write it, or None."""
        counts = self.counts_
        if counts is None:
            return None
        here = self.tree_.leaves_under(node)
        there = self.tree_.leaves_under(other) if other is not None else sorted(set(range(self.tree_.n_leaves)) - set(here))
        if not there:
            return None
        a = counts.df[here].sum(0) / max(counts.sizes[here].sum(), 1.0)
        b = counts.df[there].sum(0) / max(counts.sizes[there].sum(), 1.0)
        unigram = np.array([" " not in k and k not in exclude for k in counts.keys])
        gain = np.where(unigram & (a >= min_share), a - b, -np.inf)
        j = int(np.argmax(gain)) if len(gain) else -1
        return counts.forms[j] if j >= 0 and gain[j] >= min_share / 2 else None

    def level(self, k: int | None = None, *, merge_duplicates: bool = True) -> list[dict]:
        """The groups of the level of `k` groups (default: `default_k_`), largest first.

        Returns:
            per proposal {"nodes" (tree nodes shown as this one proposal: more than one when near-duplicates were
            merged), "leaves" (cluster ids of `labels`), "size", "name", "alternatives", "existing" (the existing child
            its best name would repeat, else None), "parts" ([] or, for merged
            near-duplicates, one {"node", "name", "leaves", "size"} per merged node)}.
        """
        stored = self.stored_levels_.get(str(self.default_k_ if k is None else k))
        if merge_duplicates and stored is not None:  # a restored tree: the levels the fitted one gave
            return [dict(group) for group in stored]
        nodes = self.tree_.level(self.default_k_ if k is None else k)
        named = self.names(nodes)
        groups = [[i] for i in range(len(nodes))]
        if merge_duplicates:
            groups = self._merge_duplicates(nodes, named)
        out = []
        for members in groups:  # the first member is the one that names the proposal
            parts = [nodes[i] for i in members]
            leaves = sorted(int(self.tree_.leaf_ids[leaf]) for n in parts for leaf in self.tree_.leaves_under(n))
            head = named[members[0]]
            out.append(
                {
                    "nodes": parts,
                    "leaves": leaves,
                    "size": int(sum(self.tree_.sizes[n] for n in parts)),
                    "name": head["name"],
                    "alternatives": head["alternatives"],
                    "existing": head["existing"],
                    "parts": [self._part(nodes[i], named[i]["name"]) for i in members] if len(members) > 1 else [],
                }
            )
        return sorted(out, key=lambda g: -g["size"])

    def _part(self, node: int, name: str) -> dict:
        leaves = sorted(int(self.tree_.leaf_ids[leaf]) for leaf in self.tree_.leaves_under(node))
        return {"node": int(node), "name": name, "leaves": leaves, "size": int(self.tree_.sizes[node])}

    def _merge_duplicates(self, nodes: list[int], named: list[dict]) -> list[list[int]]:
        """Index groups of `nodes` (each led by the node that names it): a node whose best name an earlier node took
        joins it when that node is among its `duplicate_neighbours` nearest by cosine among `nodes`; a node without a
        name of its own (its titles name no type: "Men Black Shoes") joins its nearest sibling that has one."""
        if len(nodes) < 2:
            return [[i] for i in range(len(nodes))]
        S = self.sums_[nodes]
        unit = S / np.maximum(np.linalg.norm(S, axis=1, keepdims=True), 1e-12)
        sims = unit @ unit.T
        np.fill_diagonal(sims, -np.inf)
        owner = list(range(len(nodes)))
        for i, entry in enumerate(named):
            j = entry["duplicate_of"]
            # a typeless group named by its descriptions has nothing in its titles to be its own category by: its
            # namesake takes it wherever it lies (`describe_typeless`)
            near = j is not None and (nodes[i] in self.described_ or j in np.argsort(-sims[i])[: self.duplicate_neighbours])
            if near:
                owner[i] = owner[j]
        for i, entry in enumerate(named):
            j = entry.get("nearest_named") if self.merge_typeless else None
            if j is not None:
                owner[i] = owner[j]
        groups: dict[int, list[int]] = {}
        for i, o in enumerate(owner):
            groups.setdefault(o, [o]).extend([i] if i != o else [])
        return list(groups.values())

    def labels_at(self, k: int | None = None, *, merge_duplicates: bool = False) -> np.ndarray:
        """(N,) product labels at a level: the index of each product's proposal in `level(k)`, -1 unassigned."""
        lookup = {leaf: g for g, group in enumerate(self.level(k, merge_duplicates=merge_duplicates)) for leaf in group["leaves"]}
        return np.array([lookup.get(int(v), NOISE) for v in self.labels_], dtype=int)

    def subgroups(self, node: int, *, max_parts: int = 8) -> list[dict]:
        """The named parts of a tree node (`ClusterTree.subgroups`): [{"node", "leaves", "size", "name"}]; a part
        without a name of its own is named after the node, qualified by what separates it from its sibling parts."""
        parts = self.tree_.subgroups(node, max_parts=max_parts)
        parent = self.candidates(node)[0].text
        return [self._part(p, entry["name"]) for p, entry in zip(parts, self.names(parts, fallback=parent))]

    def as_dict(self, *, k_max: int | None = None) -> dict:
        """JSON-ready for a page: the tree, the default k, the names at every level 1..k_max and each node's direction
        (its unit member sum, for `restore`)."""
        k_max = min(k_max or self.k_max, self.tree_.n_leaves)
        unit = self.sums_ / np.maximum(np.linalg.norm(self.sums_, axis=1, keepdims=True), 1e-12)
        return {
            **self.tree_.as_dict(),
            "linkage": self.linkage,
            "represent": self.represent,
            "default_rule": self.default,
            "default_k": int(self.default_k_),
            "node_name": self.node_name,
            "taken": self.taken,
            "use_descriptions": self.use_descriptions,
            "describe_typeless": self.describe_typeless,
            "levels": {str(k): self.level(k) for k in range(1, k_max + 1)},
            "directions": unit.round(5).tolist(),
        }

    @classmethod
    def restore(
        cls,
        data: dict,
        labels: np.ndarray,
        titles: list[str] | None,
        *,
        brands: list[str | None] | None = None,
        descriptions: list[str] | None = None,
    ) -> Hierarchy:
        """The hierarchy of `as_dict` again, over the same products' leaf `labels`, titles (and descriptions, as `fit`
        was given them): a level can then be shown or stored at any k without re-running discovery."""
        hier = cls(linkage=data["linkage"], represent=data["represent"], default=data["default_rule"])
        hier.node_name, hier.taken = data.get("node_name", ""), list(data.get("taken", []))
        hier.k_max = max(int(k) for k in data["levels"]) if data.get("levels") else hier.k_max
        hier.labels_ = np.asarray(labels)
        hier.tree_ = ClusterTree.from_dict(data)
        hier.default_k_ = int(data["default_k"])
        hier.sums_ = np.asarray(data["directions"], dtype=np.float64)
        hier.ranked_, hier.counts_ = {}, None
        hier.use_descriptions = bool(data.get("use_descriptions", False))
        hier.describe_typeless = bool(data.get("describe_typeless", False))  # trees from before: titles only
        hier._rank(titles, brands, descriptions if hier.use_descriptions else None)
        hier._describe_typeless(descriptions if hier.describe_typeless else None, brands)
        # the stored levels are what the fitted tree gave (and the map is coloured by): the directions are kept
        # rounded, which can flip a near tie of which group is a duplicate's nearest (on Footwear > Shoes the
        # re-computed levels 9-12 merged "Unisex Casual Shoes" into "Men Casual Shoes", the fitted ones not)
        hier.stored_levels_ = dict(data.get("levels", {}))
        return hier

    def _rank(self, titles: list[str] | None, brands: list[str | None] | None, descriptions: list[str] | None) -> None:
        if titles is None or not self.tree_.n_leaves:
            return
        self.counts_ = self.namer.count(list(titles), self.labels_, brands=brands, descriptions=descriptions)
        for node in range(len(self.sums_)):
            self.ranked_[node] = self.namer.ranked(self.counts_, self.tree_.leaves_under(node), node_name=self.node_name)

    def _describe_typeless(self, descriptions: list[str] | None, brands: list[str | None] | None) -> None:
        """Name candidates from `descriptions` for the tree nodes whose titles gave none (`describe_typeless`)."""
        self.described_ = {}
        head = WORD.findall(self.node_name.lower())
        typeless = [n for n in range(len(self.sums_)) if not self.ranked_.get(n)] if self.counts_ is not None else []
        if descriptions is None or not head or not typeless:
            return
        counts = self.namer.count_qualified(list(descriptions), self.labels_, lemma(head[-1]), brands=brands)
        for node in typeless:
            found = self.namer.ranked(counts, self.tree_.leaves_under(node), node_name=self.node_name, by_share=True)
            if found:
                self.described_[node] = found
