"""Scores of predicted category paths against true ones: per-level accuracy and macro-F1, and F1 per node.

Paths are full path strings ("Footwear > Shoes > Heels"); `core.steps.compare` reads two model versions'
stored predictions from the database and compares them with these.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from core.data.dataset import PATH_SEP


def level_scores(truth: dict[int, str], pred: dict[int, str]) -> list[dict[str, float]]:
    """Per level: accuracy and macro-F1 of the path prefixes, over products with a label that deep."""
    depth = max((len(p.split(PATH_SEP)) for p in truth.values()), default=0)
    out = []
    for level in range(1, depth + 1):
        pairs = []
        for pid, label in truth.items():
            parts = label.split(PATH_SEP)
            if len(parts) >= level:
                guess = pred.get(pid, "").split(PATH_SEP)
                pairs.append((PATH_SEP.join(parts[:level]), PATH_SEP.join(guess[:level]) if len(guess) >= level else ""))
        f1 = node_f1(pairs)
        out.append(
            {
                "level": level,
                "accuracy": round(sum(t == p for t, p in pairs) / len(pairs), 4) if pairs else float("nan"),
                "macro_f1": round(
                    sum(v["f1"] for k, v in f1.items() if v["support"]) / max(1, sum(1 for v in f1.values() if v["support"])), 4
                ),
                "n": len(pairs),
            }
        )
    return out


def node_f1(pairs: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """{path: {"f1", "support", "predicted"}} over (true, predicted) path pairs."""
    tp = Counter(t for t, p in pairs if t == p)
    n_true, n_pred = Counter(t for t, _ in pairs), Counter(p for _, p in pairs if p)
    out = {}
    for path in set(n_true) | set(n_pred):
        denom = n_true[path] + n_pred[path]
        out[path] = {"f1": round(2 * tp[path] / denom, 4) if denom else 0.0, "support": n_true[path], "predicted": n_pred[path]}
    return out


def changed_nodes(
    f1_old: dict[str, dict[str, float]],
    f1_new: dict[str, dict[str, float]],
    *,
    is_new: Callable[[str], bool],
    min_change: float = 0.005,
) -> list[dict[str, Any]]:
    """The nodes whose F1 (`node_f1` of the old and the new version) moved by at least `min_change`, and every node
    `is_new` says the old version did not know; new nodes first, then by |delta|.

    Returns:
        [{path, old_f1, new_f1, delta, support, new_node}] (a node missing from one side has F1 0 and support 0 there).
    """
    nodes = []
    for path in sorted(set(f1_old) | set(f1_new)):
        a, b = f1_old.get(path, {"f1": 0.0, "support": 0}), f1_new.get(path, {"f1": 0.0, "support": 0})
        new = is_new(path)
        if new or abs(b["f1"] - a["f1"]) >= min_change:
            nodes.append(
                {
                    "path": path,
                    "old_f1": a["f1"],
                    "new_f1": b["f1"],
                    "delta": round(b["f1"] - a["f1"], 4),
                    "support": max(a["support"], b["support"]),
                    "new_node": new,
                }
            )
    nodes.sort(key=lambda r: (not r["new_node"], -abs(r["delta"])))
    return nodes
