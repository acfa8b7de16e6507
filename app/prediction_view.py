"""Filtering and export of stored predictions for review (pure pandas; the Predictions page calls it)."""

from __future__ import annotations

from typing import Any

from core.data.dataset import PATH_SEP
from core.data.export import safe_frame

AGREEMENT = {"all": None, "agrees with label": True, "disagrees with label": False}


def prediction_frame(rows: list[dict[str, Any]]):
    """A DataFrame of `db.predictions.prediction_table` rows with one column per level's confidence."""
    import pandas as pd

    df = pd.DataFrame(rows)
    if df.empty:
        return df
    depth = int(df["levels"].map(len).max())
    padded = [c + [float("nan")] * (depth - len(c)) for c in df["levels"]]  # a shorter path's deeper levels: NaN
    levels = pd.DataFrame(padded, index=df.index, columns=[f"level_{i + 1}" for i in range(depth)], dtype=float)
    return pd.concat([df.drop(columns="levels"), levels], axis=1)


def filter_predictions(
    df,
    *,
    node_path: str | None = None,
    confidence_of: str = "confidence",
    confidence_range: tuple[float, float] = (0.0, 1.0),
    platforms: list[str] | None = None,
    agreement: str = "all",
    ascending: bool = True,
):
    """Rows matching every filter, sorted by `confidence_of`.

    Args:
        df: from `prediction_frame`.
        node_path: keep products whose label or prediction is this category or below it.
        confidence_of: 'confidence' (the whole path) or 'level_K'.
        confidence_range: inclusive (low, high) on `confidence_of`.
        platforms: keep these platforms (None: all).
        agreement: a key of AGREEMENT.
        ascending: least confident first when True.
    """
    if df.empty:
        return df
    keep = df[confidence_of].between(*confidence_range)
    if node_path:
        under = lambda s: s.fillna("").map(lambda p: p == node_path or p.startswith(node_path + PATH_SEP))  # noqa: E731
        keep &= under(df["label"]) | under(df["predicted"])
    if platforms:
        keep &= df["platform"].isin(platforms)
    wanted = AGREEMENT[agreement]
    if wanted is not None:
        keep &= df["agrees"] == wanted
    return df[keep].sort_values(confidence_of, ascending=ascending, kind="stable")


def to_csv(df) -> bytes:
    """The filtered table as UTF-8 CSV for download, a cell a spreadsheet would run as a formula (a title starting
    with =, +, -, @) neutralised with a leading apostrophe."""
    text = df.select_dtypes(exclude=["number", "bool"]).columns  # only text can start a formula: numbers stay as they are
    return df.assign(**safe_frame(df[text])).to_csv(index=False).encode("utf-8")
