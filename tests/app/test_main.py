"""The app's entry point: navigation, the sidebar, and the first page."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app.helpers import ROOT, signed_in


def test_main_builds_navigation_and_renders_overview(app_env):
    at = signed_in(AppTest.from_file(ROOT / "app" / "main.py", default_timeout=60)).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview"
    sidebar = [t.value for t in at.sidebar.text]
    assert sidebar[0] == "Signed in as merchandiser (admin)" and sidebar[1] == f"Database: {app_env}"  # no password in it
