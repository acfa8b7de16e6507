"""The app's entry point: navigation, the sidebar, and the first page."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app.helpers import ROOT


def test_main_builds_navigation_and_renders_overview(app_env):
    at = AppTest.from_file(ROOT / "app" / "main.py", default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview"
    assert at.sidebar.text_input(key="actor").label.startswith("Your name")
