"""Streamlit entry point: `streamlit run app/main.py`. Asks for sign-in, then builds the navigation over pages/.

Until someone signs in only the sign-in form is shown (app/auth.py); the first start makes the first admin
(printing a generated password on the console, once). A page's unexpected error shows a short message with an
error id; the server log has the traceback under that id (`client.showErrorDetails` is off: .streamlit/config.toml).

The project is installed (`pip install -e .`, done by `make install`), so `app`, `core` and `db` import from
wherever Streamlit runs this script.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import streamlit as st

from app import auth
from app.text import md
from app.widgets import sidebar
from db.repo import CurationError

ROOT = Path(__file__).resolve().parent.parent

st.set_page_config(page_title="Taxonomy Curator", page_icon=":material/account_tree:", layout="wide")
PAGES = [
    st.Page(ROOT / "pages" / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page(ROOT / "pages" / "taxonomy.py", title="Taxonomy", icon=":material/account_tree:"),
    st.Page(ROOT / "pages" / "mapping.py", title="Mapping", icon=":material/compare_arrows:"),
    st.Page(ROOT / "pages" / "predictions.py", title="Predictions", icon=":material/insights:"),
    st.Page(ROOT / "pages" / "clusters.py", title="Clusters", icon=":material/scatter_plot:"),
    st.Page(ROOT / "pages" / "review.py", title="Review", icon=":material/fact_check:"),
    st.Page(ROOT / "pages" / "models.py", title="Models", icon=":material/model_training:"),
    st.Page(ROOT / "pages" / "import_page.py", title="Import", icon=":material/upload_file:", url_path="import"),
]
ADMIN_PAGES = {"import"}  # its job is the admin's (db.actions.JOB_ROLES): the page is hidden from the others
log = logging.getLogger("app")


def run_page(page: st.Page) -> None:
    """Run the chosen page: a refusal is shown as its message, anything else as a short message with an error id."""
    try:
        page.run()
    except CurationError as exc:
        st.error(md(exc))
    except Exception:  # noqa: BLE001 - the browser gets an id, the log gets the traceback
        error_id = secrets.token_hex(4)
        log.exception("error %s on page %s", error_id, page.title)
        st.error(f"Something went wrong on this page (error {error_id}). The server log has the details under that id.")


auth.first_admin()
user = auth.current_user()
if user is None:
    st.navigation(PAGES, position="hidden")  # the page asked for is kept in the URL for after the sign-in
    auth.sign_in_form()
else:
    navigation = st.navigation([p for p in PAGES if p.url_path not in ADMIN_PAGES or auth.has_role(user, "admin")])
    sidebar()
    run_page(navigation)
