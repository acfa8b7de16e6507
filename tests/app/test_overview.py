"""The Overview page: catalogue counts and the taxonomy tree."""

from __future__ import annotations

from tests.app.helpers import run_page


def test_overview_counts_and_tree(app_env, tree):
    at = run_page("overview")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Products"] == "80" and metrics["Labelled"] == "100.0%" and metrics["With photo"] == "80"
    plural = lambda n: f"{n:,} product" + ("" if n == 1 else "s")  # noqa: E731
    assert sorted(e.label for e in at.expander) == sorted(f"{root} · {plural(tree.products(root))}" for root in tree.paths(1))
    tree_text = "\n".join(m.value for m in at.markdown)
    for path in (p for p in tree.paths() if " > " in p):
        assert f"**{path.rsplit(' > ', 1)[-1]}** · {tree.products(path):,}" in tree_text


def test_overview_on_an_empty_database_explains_what_to_do(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    at = run_page("overview")
    assert "catalogue is empty" in at.info[0].value
