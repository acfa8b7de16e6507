"""Suggested names for discovered clusters.

Class-based TF-IDF (c-TF-IDF, as in BERTopic) over each cluster's titles and descriptions gives
its top terms and a 1-3 word name; the nearest existing taxonomy names come from embedding
similarity of the cluster centroid (or token overlap without embeddings); each summary also
carries size, coherence and, where labels are known, purity and the majority label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from core.discover.clustering import NOISE, cluster_centroids, cluster_coherence, cluster_ids, majority_labels
from core.embed.encoders import l2_normalize

TOKEN = re.compile(r"[a-z][a-z0-9]+")
PLACEHOLDERS = ("na", "nan", "null", "none")  # catalogue placeholders ("Heels NA"), never a name


def ctfidf(
    docs: list[str],
    labels: np.ndarray,
    *,
    ngram_range: tuple[int, int] = (1, 2),
    stop_words: str | list[str] | None = "english",
    min_df: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class-based TF-IDF: one document per cluster, weights tf_{t,c} * log(1 + A / f_t).

    tf_{t,c} is the frequency of term t in cluster c (L1-normalised per cluster), f_t the
    frequency of t over all clusters and A the average number of words per cluster.

    Args:
        docs: N texts (e.g. title + description), one per product.
        labels: (N,) int cluster labels; noise (-1) is left out.
        ngram_range: word n-grams counted.
        stop_words: passed to scikit-learn's CountVectorizer.
        min_df: minimum number of products a term must occur in (lowered to 1 for tiny inputs).

    Returns:
        ids: (K,) cluster labels; weights: (K, V) float; vocab: (V,) str terms.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    labels = np.asarray(labels)
    ids = cluster_ids(labels)
    kept = [d for d, lab in zip(docs, labels) if lab != NOISE]
    try:
        vec = CountVectorizer(ngram_range=ngram_range, stop_words=stop_words, min_df=min_df)
        counts = vec.fit_transform(kept)
    except ValueError:  # vocabulary empty after pruning
        vec = CountVectorizer(ngram_range=ngram_range, stop_words=stop_words, min_df=1)
        counts = vec.fit_transform(kept)
    kept_labels = labels[labels != NOISE]
    tf = np.vstack([np.asarray(counts[kept_labels == c].sum(axis=0)).ravel() for c in ids]).astype(float)
    freq = tf.sum(axis=0)
    avg_words = tf.sum() / max(len(ids), 1)
    tf /= np.maximum(tf.sum(axis=1, keepdims=True), 1e-12)
    idf = np.log1p(avg_words / np.maximum(freq, 1e-12))
    return ids, tf * idf, np.asarray(vec.get_feature_names_out())


def top_terms(weights: np.ndarray, vocab: np.ndarray, *, top_n: int = 10) -> list[list[str]]:
    """Highest-weighted terms of each row of weights: (K, V); returns K lists of up to top_n terms."""
    order = np.argsort(-weights, axis=1, kind="stable")[:, :top_n]
    return [[str(vocab[j]) for j in row if weights[i, j] > 0] for i, row in enumerate(order)]


def name_from_terms(terms: list[str], *, max_words: int = 3) -> str:
    """A short name from ranked terms: add terms in order while they bring new words.

    Args:
        terms: ranked terms (unigrams or n-grams).
        max_words: most words in the name.

    Returns:
        e.g. "running shoes" or "heels"; "" when there are no terms.
    """
    words: list[str] = []
    for term in terms:
        new = [w for w in term.split() if w not in words]
        if not new or len(words) + len(new) > max_words:
            continue
        words += new
        if len(words) >= 2:
            break
    return " ".join(words)


def nearest_names_by_embedding(
    centroids: np.ndarray, name_emb: np.ndarray, names: list[str], *, top_n: int = 3
) -> list[list[tuple[str, float]]]:
    """Taxonomy names closest to each cluster centroid by cosine similarity.

    Args:
        centroids: (K, D) cluster centroids.
        name_emb: (M, D) embeddings of the existing taxonomy names.
        names: M names.
        top_n: names per cluster.

    Returns:
        K lists of (name, cosine) pairs, best first.
    """
    sims = l2_normalize(centroids) @ l2_normalize(name_emb).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :top_n]
    return [[(names[j], float(sims[i, j])) for j in row] for i, row in enumerate(order)]


def tokens(text: str) -> set[str]:
    """Lower-case word tokens of a text, with a trailing plural "s" dropped."""
    return {t[:-1] if t.endswith("s") and len(t) > 3 else t for t in TOKEN.findall(text.lower())}


def nearest_names_by_tokens(terms: list[list[str]], names: list[str], *, top_n: int = 3) -> list[list[tuple[str, float]]]:
    """Taxonomy names sharing the most tokens with each cluster's top terms.

    Args:
        terms: K lists of ranked terms.
        names: M existing taxonomy names.
        top_n: names per cluster.

    Returns:
        K lists of (name, score) pairs, best first; score is the share of the name's tokens
        found among the terms, weighted towards higher-ranked terms.
    """
    out = []
    for ranked in terms:
        weight: dict[str, float] = {}
        for rank, term in enumerate(ranked):
            for tok in tokens(term):
                weight[tok] = max(weight.get(tok, 0.0), 1.0 / (1 + rank))
        scores = [float(np.mean([weight.get(t, 0.0) for t in tokens(n)] or [0.0])) for n in names]
        order = np.argsort(-np.array(scores), kind="stable")[:top_n]
        out.append([(names[j], scores[j]) for j in order if scores[j] > 0])
    return out


@dataclass
class ClusterSummary:
    """What a reviewer sees of one discovered cluster."""

    cluster_id: int
    name: str
    top_terms: list[str]
    nearest_names: list[tuple[str, float]]
    size: int
    coherence: float
    members: np.ndarray = field(repr=False)
    purity: float | None = None
    majority_label: str | None = None


class ClusterNamer:
    """Names clusters with c-TF-IDF and matches them to existing taxonomy names.

    Args:
        taxonomy_names: existing category names to match clusters against.
        taxonomy_embeddings: (M, D) embeddings of those names, in the space of the embeddings
            passed to `fit`; without them names are matched by token overlap.
        top_n_terms: top terms kept per cluster.
        name_words: most words in a suggested name.
        n_nearest: nearest taxonomy names kept per cluster.
        ngram_range, stop_words, min_df: c-TF-IDF vocabulary settings.
        extra_stop_words: words never used in names, added to `stop_words` (e.g. brand names,
            which otherwise name clusters after the brand that dominates them); the catalogue
            placeholders in PLACEHOLDERS ("na", ...) are always left out.
    """

    def __init__(
        self,
        *,
        taxonomy_names: list[str] | None = None,
        taxonomy_embeddings: np.ndarray | None = None,
        top_n_terms: int = 10,
        name_words: int = 3,
        n_nearest: int = 3,
        ngram_range: tuple[int, int] = (1, 2),
        stop_words: str | list[str] | None = "english",
        min_df: int = 2,
        extra_stop_words: list[str] | None = None,
    ):
        self.taxonomy_names = list(taxonomy_names or [])
        self.taxonomy_embeddings = taxonomy_embeddings
        self.top_n_terms = top_n_terms
        self.name_words = name_words
        self.n_nearest = n_nearest
        self.ngram_range = ngram_range
        self.stop_words = stop_words
        self.extra_stop_words = list(extra_stop_words or [])
        self.min_df = min_df

    def fit(
        self,
        docs: list[str] | None,
        labels: np.ndarray,
        *,
        embeddings: np.ndarray | None = None,
        known_labels: np.ndarray | None = None,
    ) -> ClusterNamer:
        """Summarise every cluster.

        Args:
            docs: N texts (title + description) or None (then names are "cluster <id>").
            labels: (N,) int cluster labels, -1 unassigned.
            embeddings: (N, D) embeddings for coherence and embedding-based name matching.
            known_labels: (N,) existing labels, for purity and the majority label.

        Sets:
            summaries_: list of ClusterSummary, one per cluster, in cluster-id order.
        """
        labels = np.asarray(labels)
        ids = cluster_ids(labels)
        terms = self._terms(docs, labels, ids)
        names = [name_from_terms(t, max_words=self.name_words) or f"cluster {c}" for t, c in zip(terms, ids)]
        nearest = self._nearest(labels, embeddings, terms)
        coherence = cluster_coherence(embeddings, labels)[1] if embeddings is not None else np.full(len(ids), np.nan)
        majority, purity = self._majority(labels, known_labels, len(ids))
        self.summaries_ = [
            ClusterSummary(
                cluster_id=int(c),
                name=names[i],
                top_terms=terms[i],
                nearest_names=nearest[i],
                size=int((labels == c).sum()),
                coherence=float(coherence[i]),
                members=np.flatnonzero(labels == c),
                purity=purity[i],
                majority_label=majority[i],
            )
            for i, c in enumerate(ids)
        ]
        return self

    def _terms(self, docs, labels, ids) -> list[list[str]]:
        if docs is None or len(ids) == 0:
            return [[] for _ in ids]
        _, weights, vocab = ctfidf(
            list(docs), labels, ngram_range=self.ngram_range, stop_words=self._stop_words(), min_df=self.min_df
        )
        return top_terms(weights, vocab, top_n=self.top_n_terms)

    def _stop_words(self) -> list[str]:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        base = ENGLISH_STOP_WORDS if self.stop_words == "english" else (self.stop_words or [])
        extra = {t for w in self.extra_stop_words for t in TOKEN.findall(w.lower())}
        return sorted(set(base) | extra | set(PLACEHOLDERS))

    def _nearest(self, labels, embeddings, terms) -> list[list[tuple[str, float]]]:
        if not self.taxonomy_names:
            return [[] for _ in terms]
        if self.taxonomy_embeddings is not None and embeddings is not None:
            _, cents = cluster_centroids(l2_normalize(embeddings), labels)
            return nearest_names_by_embedding(cents, self.taxonomy_embeddings, self.taxonomy_names, top_n=self.n_nearest)
        return nearest_names_by_tokens(terms, self.taxonomy_names, top_n=self.n_nearest)

    @staticmethod
    def _majority(labels, known_labels, k) -> tuple[list, list]:
        if known_labels is None:
            return [None] * k, [None] * k
        _, majority, purity = majority_labels(labels, np.asarray(known_labels))
        return [str(m) for m in majority], [float(p) for p in purity]


# --- Category-style names for groups of products (the proposals a merchandiser sees) --------------------------

WORD = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
BASIC_COLOURS = (
    "beige black blue bronze brown burgundy charcoal coffee copper cream gold golden green grey gray khaki lavender "
    "magenta maroon multi multicolour multicoloured mustard navy nude off-white olive orange peach pink purple red "
    "rose rust silver tan teal turquoise white yellow"
).split()
SIZE_WORDS = "xs xl xxl xxxl small medium large size sizes uk eu us cm mm ml inch inches".split()
FILLER_WORDS = (
    "men women mens womens man woman boys girls boy girl kids kid unisex adult baby pack set pair pairs new look style "
    "stylish comfortable design designed fashion trendy classic premium basic collection solid printed print self "
    "casual-wear everyday daily regular fit slim range"
).split()
MATERIAL_WORDS = (
    "leather suede canvas mesh cotton denim polyester synthetic rubber wool woollen silk linen nylon satin velvet "
    "jute metal metallic patent faux pu knit knitted jersey lace"
).split()
SMALL_WORDS = {"and", "or", "of", "for", "with", "in", "on", "the", "a"}
# scikit-learn's English stop words that are product types or parts ("Tops", "Bottoms"): kept in names
PRODUCT_STOP_WORDS = {"top", "tops", "bottom", "bottoms", "front", "back", "side", "full", "thick", "thin"}
MASS_NOUNS = ("wear", "ware", "jewellery", "jewelry", "clothing", "care", "makeup", "luggage", "equipment", "gear")


def name_stop_words() -> set[str]:
    """Words a name never starts or ends with: scikit-learn's English stop words but for product words."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return (set(ENGLISH_STOP_WORDS) - PRODUCT_STOP_WORDS) | SMALL_WORDS


def plural(name: str) -> str:
    """The name with its last word in the plural, as category names are ("Kurta" -> "Kurtas", "Polo T-Shirt" ->
    "Polo T-Shirts", "Dress" -> "Dresses"); already plural, mass nouns ("Footwear", "Jewellery"), materials, colours
    and names ending in a digit are left as they are."""
    words = name.split()
    if not words:
        return name
    last = words[-1]
    low = last.lower()
    uncountable = low.endswith(MASS_NOUNS) or low in MATERIAL_WORDS or low in BASIC_COLOURS
    if lemma(low) != low.replace("-", "") or uncountable or not low[-1:].isalpha() or len(low) < 3:
        return name
    if low.endswith(("s", "x", "z", "ch", "sh")):
        last += "es"
    elif low.endswith("y") and low[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return " ".join(words[:-1] + [last])


def lemma(word: str) -> str:
    """A crude English lemma of one lower-case word: plural endings dropped ("heels" -> "heel", "dresses" -> "dress",
    "watches" -> "watch", "accessories" -> "accessory"); hyphens removed ("t-shirts" -> "tshirt")."""
    w = word.lower().replace("-", "")
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("sses", "shes", "ches", "xes", "zes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def name_key(name: str) -> str:
    """What two names must share to be the same name: their words' lemmas, case, spaces and hyphens ignored
    ("Sports Shoes" == "sport shoe", "T-Shirts" == "Tshirts")."""
    return "".join(lemma(w) for w in WORD.findall(name.lower().replace("&", " ")))


def title_case(phrase: str) -> str:
    """'running shoes' -> 'Running Shoes', 't-shirts' -> 'T-Shirts'; small words ('and', 'of') stay lower-case
    inside a name."""
    words = phrase.split()
    out = []
    for i, w in enumerate(words):
        if i and w in SMALL_WORDS:
            out.append(w)
        else:
            out.append("-".join(part[:1].upper() + part[1:] for part in w.split("-")))
    return " ".join(out)


def without_brand(title: str, brand: str | None) -> str:
    """The title without its brand name (case-insensitive, whole words)."""
    if not brand:
        return title
    return re.sub(rf"(?<![a-z0-9]){re.escape(brand.lower())}(?![a-z0-9])", " ", title.lower())


def title_words(title: str, drop: set[str]) -> list[str]:
    """The lower-case words of a title without `drop` (brand words, placeholders) and digits-only tokens."""
    return [w for w in WORD.findall(title.lower().replace("'s", " ")) if len(w) > 1 and w not in drop and not w.isdigit()]


_LEAD_END = re.compile(r"[.,;:!?(]|\s(?:in|with|of|made|for|from|featuring|and|by|that|to|on|at)\s", re.IGNORECASE)


def lead_phrase(description: str | None, *, max_words: int = 5) -> str:
    """The phrase a product description opens with, up to its first preposition or punctuation ("Jumper in a soft
    knit" -> "Jumper", "Long-sleeved sports top in fast-drying fabric" -> "Long-sleeved sports top"): descriptions
    that name the product type first (H&M's do) name it there even when the title is a style name ("Nils"); "" when
    the opening runs past `max_words` words (a sentence, not a product phrase)."""
    text = (description or "").strip()
    lead = _LEAD_END.split(f"{text} ", maxsplit=1)[0].strip()
    return lead if 0 < len(lead.split()) <= max_words else ""


@dataclass
class Candidate:
    """One candidate name of a group: its lemma key, how it reads, and its score."""

    key: str
    text: str
    score: float
    key_words: tuple[str, ...] = ()


class GroupNamer:
    """Category-style names for sibling groups of products, from their titles.

    A candidate is a phrase of 1-3 consecutive title words (brand words and placeholders removed) with no repeated
    lemma that does not start or end on a stop word. Its score in a group is
    `(df + tail) / 2 * precision`: df the share of the group's titles holding it, tail the share whose title ends
    with it (product titles end with the product type: "Men Black Running Shoes"), precision the share of the
    phrase's titles that fall in this group. Phrases with colour, size, filler or material-only words are kept only
    when those words separate the group (at least `separating_df` of the group holds them and at least
    `separating_precision` of their titles are in it). A phrase equal to the node's own name or to a name in
    `taken` (existing children, earlier siblings) is skipped; the group gets its best remaining candidate.

    Args:
        colours: colour words (default: a basic list; the catalogue's own colour vocabulary can be added).
        separating_df, separating_precision: when an attribute word counts as what separates the group.
        max_words: longest phrase.
    """

    def __init__(
        self,
        *,
        colours: list[str] | None = None,
        separating_df: float = 0.5,
        separating_precision: float = 0.6,
        max_words: int = 3,
    ):
        self.drop = set(PLACEHOLDERS)
        self.stop = name_stop_words()
        colour_words = {w for c in (colours or []) for w in WORD.findall(c.lower())}
        self.attributes = {lemma(w) for w in set(BASIC_COLOURS) | colour_words | set(SIZE_WORDS) | set(FILLER_WORDS)}
        self.materials = {lemma(w) for w in MATERIAL_WORDS}
        self.separating_df = separating_df
        self.separating_precision = separating_precision
        self.max_words = max_words

    def phrases(self, title: str, brand: str | None = None) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
        """(every candidate phrase of a title, those at its end) as word tuples; the product's own `brand` is removed
        from its title first (as a whole phrase: a brand "F Sports" takes "sports" from its own titles only)."""
        words = title_words(without_brand(title, brand), self.drop)
        found, tail = set(), set()
        for n in range(1, self.max_words + 1):
            for start in range(len(words) - n + 1):
                phrase = tuple(words[start : start + n])
                lemmas = [lemma(w) for w in phrase]
                if len(set(lemmas)) < n or phrase[0] in self.stop or phrase[-1] in self.stop:
                    continue
                found.add(phrase)
                if start + n == len(words):
                    tail.add(phrase)
        return found, tail

    def count(
        self,
        titles: list[str],
        labels: np.ndarray,
        *,
        brands: list[str | None] | None = None,
        descriptions: list[str] | None = None,
        min_count: int = 3,
    ) -> PhraseCounts:
        """Phrase counts per cluster of `labels` (noise left out), each title without its product's brand (`brands`,
        aligned with `titles`); with `descriptions`, the phrases of each description's opening (`lead_phrase`) count
        as the product's too (once per product): see `PhraseCounts`."""
        leads = [lead_phrase(d) for d in descriptions] if descriptions is not None else [""] * len(titles)
        sets = []
        for title, lab, brand, lead in zip(titles, labels, brands or [None] * len(titles), leads):
            found, tails = self.phrases(title, brand) if lab != NOISE else (set(), set())
            if lead and lab != NOISE:
                more, more_tails = self.phrases(lead, brand)
                found, tails = found | more, tails | more_tails
            sets.append((found, tails))
        return self.count_sets(sets, labels, min_count=min_count)

    def qualified(self, text: str, head: str, brand: str | None = None, *, max_words: int = 2) -> set[tuple[str, ...]]:
        """The phrases of `text` (without `brand`) made of a word of lemma `head` and the 1 to `max_words` - 1 words
        just before it in its sentence, none of them a stop word: how a text qualifies a noun ("... these casual shoes
        from Nike ..." -> ("casual", "shoes") for head "shoe")."""
        found = set()
        for sentence in re.split(r"[.!?;:,()]", text or ""):
            words = title_words(without_brand(sentence, brand), self.drop)
            for end, word in enumerate(words):
                if lemma(word) != head:
                    continue
                for start in range(end - 1, max(end - max_words, -1), -1):
                    phrase = tuple(words[start : end + 1])
                    if phrase[0] in self.stop or len({lemma(w) for w in phrase}) < len(phrase):
                        break
                    found.add(phrase)
        return found

    def count_qualified(
        self, texts: list[str], labels: np.ndarray, head: str, *, brands: list[str | None] | None = None, min_count: int = 3
    ) -> PhraseCounts:
        """Per cluster of `labels`, the phrases by which `texts` (descriptions) qualify the noun `head` (`qualified`:
        a modifier and the noun), each counted as a whole phrase (as if it ended a title)."""
        sets = []
        for text, lab, brand in zip(texts, labels, brands or [None] * len(texts)):
            found = self.qualified(text, head, brand) if lab != NOISE else set()
            sets.append((found, found))
        return self.count_sets(sets, labels, min_count=min_count)

    def count_sets(self, sets: list[tuple[set, set]], labels: np.ndarray, *, min_count: int = 3) -> PhraseCounts:
        """`PhraseCounts` of (the phrases, those at the end) of each product (noise left out)."""
        from collections import Counter

        labels = np.asarray(labels)
        ids = cluster_ids(labels)
        row = {int(c): i for i, c in enumerate(ids)}
        df: dict[str, Counter] = {}
        tail: dict[str, Counter] = {}
        surface: dict[str, Counter] = {}
        for (found, tails), lab in zip(sets, labels):
            if lab == NOISE:
                continue
            for bucket, phrases in ((df, found), (tail, tails)):
                for key, text in {" ".join(lemma(w) for w in p): " ".join(p) for p in phrases}.items():
                    bucket.setdefault(key, Counter())[row[int(lab)]] += 1
                    if bucket is df:
                        surface.setdefault(key, Counter())[text] += 1
        keys = sorted(k for k, c in df.items() if sum(c.values()) >= min_count)
        D, T = np.zeros((len(ids), len(keys))), np.zeros((len(ids), len(keys)))
        for j, key in enumerate(keys):
            for i, n in df[key].items():
                D[i, j] = n
            for i, n in tail.get(key, {}).items():
                T[i, j] = n
        sizes = np.array([(labels == c).sum() for c in ids], dtype=float)
        forms = [surface[k].most_common(1)[0][0] for k in keys]
        return PhraseCounts(ids=ids, keys=keys, forms=forms, df=D, tail=T, sizes=sizes)

    def ranked(
        self, counts: PhraseCounts, leaves: list[int], *, node_name: str = "", top_n: int = 10, by_share: bool = False
    ) -> list[Candidate]:
        """Candidate names of the group made of the clusters at positions `leaves` of `counts`, best first (`by_share`:
        ranked by the share of the group's products holding them alone, not by the score of the class docstring)."""
        n = counts.sizes[leaves].sum()
        df = counts.df[leaves].sum(axis=0)
        tail = counts.tail[leaves].sum(axis=0)
        total = np.maximum(counts.df.sum(axis=0), 1.0)
        share, precision = df / max(n, 1.0), df / total
        score = share if by_share else (share + tail / max(n, 1.0)) / 2 * precision
        separating = {
            counts.keys[j]
            for j in np.flatnonzero((share >= self.separating_df) & (precision >= self.separating_precision))
            if " " not in counts.keys[j]
        }
        own = name_key(node_name) if node_name else None
        out: list[Candidate] = []
        for j in np.argsort(-score, kind="stable"):
            if score[j] <= 0 or share[j] < 0.05 or len(out) >= top_n:
                break
            words = counts.keys[j].split()
            if not self._allowed(words, separating) or name_key(counts.keys[j]) == own:
                continue
            out.append(Candidate(name_key(counts.keys[j]), plural(title_case(counts.forms[j])), float(score[j]), tuple(words)))
        return out

    def _allowed(self, words: list[str], separating: set[str]) -> bool:
        """A name needs a word that is no colour, size or filler word; those it has must separate the group; a name
        of material words only must separate it too."""
        attributes, materials = self.attributes, self.materials
        if all(w in attributes for w in words) or any(w in attributes and w not in separating for w in words):
            return False
        return not all(w in materials or w in attributes for w in words) or set(words) <= separating


@dataclass
class PhraseCounts:
    """Candidate phrases of a node's titles counted per cluster: `df[i, j]` titles of cluster `ids[i]` holding phrase
    `keys[j]` (its words' lemmas, space-joined), `tail[i, j]` those ending with it; `forms[j]` the phrase as the
    titles most often write it; `sizes[i]` the cluster's number of products."""

    ids: np.ndarray
    keys: list[str]
    forms: list[str]
    df: np.ndarray
    tail: np.ndarray
    sizes: np.ndarray


def covered(key_words: set[str], used: list[set[str]]) -> bool:
    """Whether a name's lemmas are all inside a name already used ("Casual" after "Casual Shoes")."""
    return any(key_words <= u for u in used)


def words_of(name: str) -> set[str]:
    return {lemma(w) for w in WORD.findall(name.lower())}


def remainder_name(best: Candidate | None, i: int, used_words: list[set[str]], fallback: str) -> str:
    """The name of a group whose every candidate is taken: "Other <its best candidate>" ("Other T-Shirts"), else
    "<its best candidate> <n>", else "<fallback> <n>"."""
    if best is None:
        return f"{fallback} {i + 1}"
    other = best.text if best.text.lower().startswith("other ") else f"Other {best.text}"
    return other if not covered(words_of(other), used_words) else f"{best.text} {i + 1}"


def distinct_names(ranked: list[list[Candidate]], *, taken: list[str] = (), qualify=None, fallback: str = "Group") -> list[dict]:
    """One name per group, no two alike and none like `taken` (existing children): groups pick in the order given
    (largest first), each its best candidate whose words are not all inside a name already used.

    A group whose best candidate an earlier group took gets `qualify(group, earlier group, candidate)` when that gives
    a free name (e.g. the word that separates the two: "Women Sports Shoes"); one whose best candidate is an existing
    child gets `qualify(group, None, candidate)` (the word that separates it from the rest); else its next free
    candidate, else a remainder name (`remainder_name`).

    Returns:
        per group {"name", "alternatives" (its other free candidates), "duplicate_of" (index of the earlier group
        that took this group's best candidate, else None), "existing" (the existing child its best candidate names,
        else None)}.
    """
    existing = {name_key(t): t for t in taken}
    used_words = [words_of(t) for t in taken]
    owner: dict[str, int] = {}
    out = []
    for i, cands in enumerate(ranked):
        free = [c for c in cands if not covered(set(c.key_words), used_words)]
        best = cands[0] if cands else None
        duplicate = owner.get(best.key) if best else None
        child = existing.get(best.key) if best else None
        name = None
        if qualify is not None and (duplicate is not None or child is not None):
            better = qualify(i, duplicate, best)
            name = better if better and not covered(words_of(better), used_words) else None
        name = name or (free[0].text if free else remainder_name(best, i, used_words, fallback))
        for c in cands[:1] + free[:1]:
            owner.setdefault(c.key, i)
        used_words.append(words_of(name))
        others = [c.text for c in free if not set(c.key_words) <= words_of(name)]
        out.append({"name": name, "alternatives": others[:3], "duplicate_of": duplicate, "existing": child})
    return out
