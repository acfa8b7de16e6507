"""Everything a catalogue or a person wrote is shown as text: `app.text` (Markdown, Plotly labels, truncation) against
hand-written expectations, every page rendered with the hostile catalogue of tests/app/hostile.py (the Markdown
the pages hand to Streamlit holds the catalogue's text escaped, and reads back as written), and the Predictions
CSV export with formula-like cells neutralised."""

from __future__ import annotations

import html
import re

import pandas as pd
import pytest

from app.text import ELLIPSIS, label, md, short
from core.data.export import safe_frame
from tests.app import hostile
from tests.app.helpers import add_people, chart_traces, run_page, served_csv
from tests.app.shown import shown

WJ = "\u2060"
TRACK = "http://tracker.invalid/track.png"
PAGES = ("overview", "taxonomy", "mapping", "predictions", "clusters", "review", "models", "import_page")
# the constructs the renderer would act on, as they appear unescaped in a Markdown source
LIVE = ("](", "<a", "<img", "<script", ":red[", ":blue-badge[", "$x^2$", "http://", "www.evil", "@evil", ":smile:")


# ---------------------------------------------------------------- app.text, by hand


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("![x](http://h/t.png)", rf"\!\[x\]\(http\:\/\/{WJ}h\/t\.png\)"),
        ("[click](http://evil)", rf"\[click\]\(http\:\/\/{WJ}evil\)"),
        ("<a href='x'>y</a>", r"\<a href\=\'x\'\>y\<\/a\>"),
        ("<script>", r"\<script\>"),
        ("*em* _u_ **b** ~~s~~", rf"\*em\* \_u\_ \*\*b\*\* \~{WJ}\~s\~{WJ}\~"),
        ("# h", r"\# h"),
        ("1. one", r"1\. one"),
        ("- item", r"\- item"),
        ("| a | b |", r"\| a \| b \|"),
        ("`code`", r"\`code\`"),
        (":red[y]", rf"\:{WJ}red\[y\]"),
        (":material/home:", rf"\:{WJ}material\/home\:"),
        (":smile:", rf"\:{WJ}smile\:"),
        ("$x$", r"\$x\$"),
        ("&amp; &#60;", r"\&amp\; \&\#60\;"),
        ("a -> b", rf"a \-{WJ}\> b"),
        ("a@b.co", rf"a\@{WJ}b\.co"),
        ("www.x.org", rf"www{WJ}\.x\.org"),
        ("back\\slash", r"back\\slash"),
        ("14:06", r"14\:06"),
        ("two\n\n    lines\r\n", "two lines "),
    ],
)
def test_md_escapes_each_markdown_construct(text, escaped):
    assert md(text) == escaped


def test_md_of_nothing_is_empty():
    assert (md(None), md(float("nan")), md("")) == ("", "", "")


def unescaped_punctuation(markdown: str) -> list[str]:
    """ASCII punctuation of `markdown` not preceded by a backslash (a backslash escaping a backslash counts)."""
    out, i = [], 0
    while i < len(markdown):
        if markdown[i] == "\\" and i + 1 < len(markdown):
            i += 2
            continue
        if re.fullmatch(r"[!-/:-@\[-`{-~]", markdown[i]):
            out.append(markdown[i])
        i += 1
    return out


@pytest.mark.parametrize("text", [*hostile.markup(TRACK).values(), *hostile.FORMULAS.values(), "a\\", "x  y\tz\n"])
def test_md_leaves_no_live_character_and_reads_back_as_written(text):
    escaped = md(text)
    assert unescaped_punctuation(escaped) == []
    assert shown(escaped) == " ".join(text.split()) + (" " if text[-1].isspace() else "")


def test_label_escapes_the_html_plotly_renders_and_reads_back():
    text = "<a href='http://evil'>x</a> & <b>y</b><br>"
    assert label(text) == "&lt;a href='http://evil'&gt;x&lt;/a&gt; &amp; &lt;b&gt;y&lt;/b&gt;&lt;br&gt;"
    assert html.unescape(label(text)) == text and label(None) == ""


def test_short_cuts_a_long_text_to_n_characters_with_an_ellipsis():
    assert short("abcdefgh", 5) == "abcd" + ELLIPSIS
    assert short("abcde", 5) == "abcde" and short(None, 5) == ""
    assert len(short("x" * 100_000, 120)) == 120


def test_safe_frame_neutralises_formula_cells_only():
    df = pd.DataFrame({"title": ["=1+1", "+x", "-x", "@x", "\tx", "ok"], "n": [1.5, -2.0, 3.0, 4.0, 5.0, 6.0]})
    out = safe_frame(df)
    assert out["title"].tolist() == ["'=1+1", "'+x", "'-x", "'@x", "'\tx", "ok"]
    assert out["n"].tolist() == [1.5, -2.0, 3.0, 4.0, 5.0, 6.0] and df["title"][0] == "=1+1"  # numbers, the input: as they were


# ---------------------------------------------------------------- the pages, with the hostile catalogue


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> hostile.HostileWorld:
    folder = tmp_path_factory.mktemp("hostile")
    built = hostile.build(folder, TRACK, folder / "data")
    add_people(built.url)
    return built


@pytest.fixture
def hostile_env(world, monkeypatch) -> hostile.HostileWorld:
    monkeypatch.setenv("DATABASE_URL", world.url)
    monkeypatch.setenv("DATA_DIR", str(world.folder / "data"))
    return world


MARKDOWN_ELEMENTS = ("markdown", "caption", "success", "error", "warning", "info", "title", "header", "subheader", "toast")


def rendered_as_markdown(at) -> list[str]:
    """Every string the page hands to something that renders Markdown: the elements above, progress text, and the
    labels and tooltips of buttons, metrics, expanders, tabs and inputs."""
    out = [e.value for kind in MARKDOWN_ELEMENTS for e in at.get(kind)]
    out += [p.proto.text for p in at.get("progress")]
    out += [b.label for b in at.button] + [m.label for m in at.metric] + [e.label for e in at.get("expander")]
    out += [t.label for t in at.tabs] + [w.label for w in (*at.selectbox, *at.text_input)]
    out += [w.help for w in (*at.button, *at.metric) if w.help]
    return out


@pytest.mark.parametrize("name", PAGES)
def test_a_page_hands_streamlit_the_hostile_catalogue_escaped(hostile_env, name):
    at = run_page(name)
    sources = rendered_as_markdown(at)
    live = sorted({(c, s[:80]) for s in sources for c in LIVE if re.search(r"(?<!\\)" + re.escape(c), s)})
    assert live == []
    assert sum(len(s) for s in sources) < 60_000  # the 100,000-character title is cut everywhere Markdown shows it


def test_the_taxonomy_cards_show_titles_as_written_and_the_long_one_cut(hostile_env):
    at = run_page("taxonomy")
    cards = [shown(m.value).strip("*") for m in at.markdown]
    m = hostile.markup(TRACK)
    assert {f"{m['link']} title", f"{m['script']} title", f"{m['directive']} title"} <= set(cards)
    long_title = hostile_env.titles[hostile_env.long_id]
    (cut,) = [c for c in cards if c.startswith(long_title[:60])]
    assert len(cut) <= 120 and cut.endswith(ELLIPSIS) and long_title.startswith(cut[:-1])
    full = [e for e in at.get("expander") if e.label == "Full text"]
    assert len(full) == 1 and full[0].text[0].value == long_title  # the whole title on demand, as text


def test_a_photo_replaced_after_ingest_by_a_non_image_shows_unreadable(hostile_env):
    at = run_page("taxonomy")  # run_page: no exception
    captions = [c.value for c in at.caption]
    assert "no photo (unreadable)" in captions and "no photo (remote)" in captions


def test_the_clusters_legend_shows_proposal_names_as_text(hostile_env):
    at = run_page("clusters")
    names = [t["name"] for t in chart_traces(at)]
    assert [n for n in names if "<" in n] == []
    shown_names = [html.unescape(n).rsplit(" (", 2)[0].split(" ", 1)[1] for n in names]  # "#id NAME (status) (size)"
    assert sorted(shown_names) == sorted(hostile_env.proposal_names)


def test_the_predictions_export_neutralises_formula_cells(hostile_env, media_stores):
    at = run_page("predictions")
    rows = {r["title"]: r for r in served_csv(at, media_stores, "pred_export")}
    for formula in hostile.FORMULAS.values():
        assert "'" + formula in rows and formula not in rows
    assert f"{hostile.markup(TRACK)['link']} title" in rows  # other titles as they were
