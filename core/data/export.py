"""Writing user data to files other programs open: a CSV cell that a spreadsheet would run as a formula is
neutralised (OWASP "CSV injection": a leading =, +, -, @, tab or carriage return gets a leading apostrophe)."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """`value` unchanged unless it is text a spreadsheet would read as a formula; then the text with a leading "'"."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_frame(df):
    """A copy of the DataFrame `df` with every cell passed through `safe_cell` (numbers, dates and NaN unchanged)."""
    return df.map(safe_cell)
