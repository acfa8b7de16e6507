"""Showing what a catalogue or a person wrote as text, never as markup: the one escaping helper of every page.

- `md(text)`: for anything Streamlit renders as Markdown (st.markdown, st.caption, st.title/header/subheader, the
  alerts st.success/info/warning/error, st.toast, st.progress text, widget labels and `help=` tooltips). Streamlit
  1.67's renderer is react-markdown with GFM (tables, strikethrough, autolinked URLs and e-mail addresses,
  footnotes), remark-math (`$...$` KaTeX), remark-directive (`:red[...]`, `:small[...]`, `:blue-badge[...]`),
  `:material/icon:` and `:streamlit:` icons, remark-emoji (`:smile:`), and its own typography (`->`, `<=`, `--`
  become arrows and dashes). Every ASCII punctuation character is backslash-escaped (CommonMark: it then stands
  for itself; raw HTML, entities, links, images, emphasis, headings, lists, code, tables, directives and math
  all start with one); whitespace runs (newlines included) become one space, so no line of the text can start a
  block; and a word joiner (U+2060, invisible) goes after a colon that precedes a word (not between digits:
  "14:06" stays as typed), between the characters of an arrow, and after `//`, `@` and a `www` before a dot, so
  the emoji, icon, typography and GFM autolink rewrites, which work on the text after escapes are resolved, find
  nothing. What the reader sees is the text itself (copied, it carries those invisible joiners: where a value is
  meant to be copied, show it with `st.text`, `st.code` or a dataframe).
- `label(text)`: for Plotly legends, hover text, axis and treemap labels, which render a subset of HTML
  (`<a href>`, `<b>`, `<br>`, `<span style>`...): `&`, `<` and `>` become entities, shown literally.
- `short(text, n)`: at most `n` characters, cut with an ellipsis, for cards, grids, legends and option lists (the
  full text is shown on demand next to it: an expander with `st.text`, or a dataframe).
"""

from __future__ import annotations

import re
from typing import Any

ELLIPSIS = "…"
WORD_JOINER = "\u2060"  # zero width, no break: invisible, and splits the patterns the renderer rewrites
_PUNCTUATION = re.compile(r"([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")
_SPACE = re.compile(r"\s+")
_COLON_WORD = re.compile(r"(?<=:)(?:(?=[^\W\d]|[+\-])|(?<!\d:)(?=\d))")  # ":smile:", ":+1:", ":100:"; not "14:06"
_ARROW = re.compile(r"(?<=[-<>~=])(?=[-<>~=])")  # "->", "<-", "<->", "--", ">=", "<=", "~="
_AUTOLINK = re.compile(r"(?<=//)|(?<=@)|(?<=www)(?=\.)", re.IGNORECASE)  # "http://x", "a@b.c", "www.x" (GFM autolinks)


def as_text(value: Any) -> str:
    """`value` as a string ("" for None, and for the NaN pandas puts where a value is missing)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def short(value: Any, n: int = 120) -> str:
    """`value` as text, cut to at most `n` characters (the last one an ellipsis) when longer."""
    text = as_text(value)
    return text if len(text) <= n else text[: max(n - 1, 0)].rstrip() + ELLIPSIS


def is_cut(value: Any, n: int = 120) -> bool:
    """Whether `short(value, n)` cuts the text."""
    return len(as_text(value)) > n


def md(value: Any) -> str:
    """`value` escaped for Streamlit's Markdown: rendered, it reads exactly as the text (whitespace collapsed)."""
    text = _SPACE.sub(" ", as_text(value))
    text = _ARROW.sub(WORD_JOINER, text)
    text = _COLON_WORD.sub(WORD_JOINER, text)
    text = _AUTOLINK.sub(WORD_JOINER, text)
    return _PUNCTUATION.sub(r"\\\1", text)


def label(value: Any) -> str:
    """`value` escaped for a Plotly label (legend, hover, axis, treemap): its HTML subset shown as text."""
    return as_text(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
