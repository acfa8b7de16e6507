"""Sign-in in a real browser: the form is all an anonymous visitor gets, a wrong password is refused, the right one
opens the page asked for, sign-out ends the session; a fresh database's generated admin password, printed once on
the server's console, signs in (what the README's `make run` relies on)."""

from __future__ import annotations

import os
import re

from playwright.sync_api import expect

from tests.e2e.conftest import ADMIN, AppPage, start_app

REFUSED = "Sign-in failed: unknown name or wrong password."


def test_only_the_sign_in_form_until_signed_in_then_the_page_asked_for(app_page):
    app_page.open("taxonomy", sign_in=None)
    page = app_page.page
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0  # no navigation
    assert "Taxonomy" not in page.locator('[data-testid="stMain"]').inner_text().replace("Taxonomy Curator", "")
    app_page.sign_in(ADMIN[0], "not the password")
    expect(page.get_by_text(REFUSED)).to_be_visible()
    app_page.sign_in(*ADMIN)
    expect(page.get_by_role("heading", name="Taxonomy", exact=True)).to_be_visible()
    expect(page.get_by_text(f"Signed in as {ADMIN[0]} (admin)")).to_be_visible()
    assert ADMIN[1] not in page.content()
    with app_page.rerun():
        page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0


def test_a_fresh_database_prints_a_generated_admin_password_that_signs_in(page, tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATOR_ADMIN")}
    app = start_app({**env, "DATABASE_URL": url, "DATA_DIR": str(tmp_path)})
    try:
        app_page = AppPage(page, app.url)
        app_page.open(sign_in=None)  # the first script run makes the admin and prints the password
        printed = re.search(r"First sign-in: user 'admin', password (\S+)", app.log())
        assert printed, app.log()
        assert printed.group(1) not in page.content()  # on the console only, never in the browser
        app_page.sign_in("admin", printed.group(1))
        expect(page.get_by_text("Signed in as admin (admin)")).to_be_visible()
    finally:
        app.stop()
