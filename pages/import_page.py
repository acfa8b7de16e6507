"""Import: bring a catalogue file (an upload, or a path on the server for a larger one), preview it, map its columns
(remembered per platform), see every problem by row and column before anything is written, then ingest, embed and
predict it in a background job that survives a page reload."""

import streamlit as st

from app import cache, imports
from app.widgets import flash

st.title("Import")
flash()


@st.fragment(run_every=2.0)
def import_job() -> None:
    imports.follow_import(cache.latest_job("import"))  # reruns the page when the job ends


imports.keep_form()
job = cache.latest_job("import")
if imports.running(job):
    import_job()  # polled only while a job runs: no rerun every 2 s while someone fills in the form
else:
    imports.follow_import(job)
source = imports.choose_source()
if source is None:
    imports.form_hidden()
    st.info("Upload a CSV or Parquet file, or type the path of one on the server.")
    st.stop()
df, unreadable = imports.load_frame(source)
if df is None:
    imports.form_hidden()
    st.error("The file cannot be read: nothing will be imported.")
    imports.problem_table(unreadable)
    st.stop()

st.subheader("Preview")
imports.preview(source, df)

st.subheader("Columns")
columns = [str(c) for c in df.columns]
platform, remembered = imports.pick_platform(columns)
mapping = imports.mapping_form(platform, columns, remembered)
images_root, images_ok = imports.images_folder(mapping, platform)
imports.remember_form()

st.subheader("Validation")
if mapping is None:
    st.caption("The report appears once the columns are mapped.")
    st.stop()
problems = imports.validation(df, mapping, source)
imports.report(df, mapping, source, platform, problems)
if cache.model_key()[0] is None:
    st.info(
        "No model is active yet: the import ingests and embeds the products; to get predictions, train a first model "
        "afterwards (Retrain on the Models page, or `python -m core train`)."
    )
ready = bool(platform) and not problems and images_ok and not imports.running(job)
if st.button(
    "Import",
    key="import_btn",
    type="primary",
    disabled=not ready,
    help="Ingest (upsert by platform and id: changed rows are updated, none is duplicated or removed), remember this "
    "mapping for the platform, embed, and predict with the active model. Runs in the background: you can leave this page.",
):
    imports.start_import(source, platform, mapping, images_root)
    st.rerun()
if not platform:
    st.caption("Name the platform to import.")
