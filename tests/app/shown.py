"""What a reader sees of a Markdown source the pages escaped: CommonMark backslash escapes resolved, the invisible
word joiners removed. Written from the CommonMark rules, not from `app.text`, so a test compares what is shown with
the test's own data."""

from __future__ import annotations

import re

ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # a backslash before ASCII punctuation stands for that character


def shown(markdown: str) -> str:
    return ESCAPED.sub(r"\1", markdown).replace("\u2060", "")
