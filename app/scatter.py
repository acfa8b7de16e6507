"""What the Clusters page draws of a map (`core.steps.maps`): each product's colour group, the scatter traces, and
the caption's note on unassigned products."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from app.text import label, short
from core.data.dataset import PATH_SEP

LEGEND_CHARS = 60  # of a group's name in the legend and the hover text


def group_names(
    colour: str, product_ids: np.ndarray, *, clusters=None, proposals=None, labels=None, predictions=None, depth: int = 1
) -> list[str]:
    """The colour group of every product of a map.

    Args:
        colour: "cluster" (the map's clusters), "proposal" ({product id: proposal name}), "label" or "prediction"
            ({product id: full path}, shown cut to `depth` levels).
    """
    if colour == "cluster":
        return [f"cluster {c}" if c >= 0 else "unassigned" for c in clusters]
    if colour == "proposal":
        return [proposals.get(int(p), "unassigned") for p in product_ids]
    source = labels if colour == "label" else predictions
    if source is None:
        raise ValueError(f"no {colour}s to colour by")
    cut = lambda path: PATH_SEP.join(path.split(PATH_SEP)[:depth]) if path else f"no {colour}"  # noqa: E731
    return [cut(source.get(int(p))) for p in product_ids]


def scatter_groups(product_ids: np.ndarray, xy: np.ndarray, names: list[str], *, max_groups: int = 24) -> list[dict[str, Any]]:
    """Traces for the scatter: the `max_groups - 1` largest groups, then the rest as "other" (coordinates
    rounded to 3 decimals: the page payload is mostly these numbers).

    Returns:
        [{"name", "x", "y", "ids"}], largest first, "unassigned"/"other" last; "name" is the legend's text (the
        group's name cut to LEGEND_CHARS and escaped for Plotly, which renders HTML in it) and its size.
    """
    counts = Counter(names)
    special = {n for n in counts if n == "unassigned" or n.startswith("no ")}
    ranked = [n for n, _ in counts.most_common() if n not in special]
    keep = set(ranked[: max_groups - 1])
    final = [n if n in keep or n in special else "other" for n in names]
    order = [n for n in ranked if n in keep] + sorted({n for n in final if n not in keep})
    arr = np.asarray(final)
    xy = np.round(np.asarray(xy, np.float64), 3)
    out = []
    for name in order:
        rows = np.flatnonzero(arr == name)
        if len(rows):
            out.append(
                {
                    "name": f"{label(short(name, LEGEND_CHARS))} ({len(rows):,})",
                    "x": xy[rows, 0].tolist(),
                    "y": xy[rows, 1].tolist(),
                    "ids": product_ids[rows].tolist(),
                    "muted": name in special or name == "other",
                }
            )
    return out


def unassigned_note(meta: dict[str, Any]) -> str:
    """ "18% unassigned (6 unclear groups among them) · " for a map's caption; "" when the map does not say."""
    if "unassigned" not in meta:
        return ""
    groups = int(meta.get("unclear_groups") or 0)
    among = f" ({groups} unclear group{'s' if groups != 1 else ''} among them)" if groups else ""
    return f"{float(meta['unassigned']):.0%} unassigned{among} · "
