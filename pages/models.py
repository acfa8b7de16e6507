"""Models: retrain on the current taxonomy and labels (a background job), follow its progress, compare a
version with the active one per level and per changed node, and activate or roll back a version."""

import pandas as pd
import streamlit as st

from app import cache
from app.auth import may, may_start
from app.widgets import confirmation, flash, follow_job, request, start_job

st.title("Models")
flash()


@st.fragment(run_every=2.0)
def retrain_status() -> None:
    job = cache.latest_job("retrain")
    running = job is not None and job.status in ("queued", "running")
    if st.button(
        "Retrain",
        key="retrain_btn",
        type="primary",
        disabled=running or not may_start("retrain"),
        help="Train on the current taxonomy (accepted sub-categories included, retired ones excluded) and labels "
        "(human over model over platform), evaluate on the fixed held-out products, predict every product and "
        "make the new version active. Runs in the background: you can leave this page.",
    ):
        start_job("retrain")
        st.rerun(scope="app")
    follow_job(job)  # reruns the page when the new version is in


retrain_status()
versions = cache.model_versions()
if not versions:
    st.info("No model yet: press Retrain (or run `make run`, which trains the first one).")
    st.stop()
by_id = {v["id"]: v for v in versions}
active = next((v for v in versions if v["status"] == "active"), None)
state = f"{versions[0]['id']}_{active['id'] if active else 0}"  # widget keys: a new or re-activated version resets them

st.subheader("Versions")
table = pd.DataFrame(
    [
        {
            "version": f"#{v['id']}",
            "status": v["status"],
            "created": v["created_at"].strftime("%Y-%m-%d %H:%M") if v["created_at"] else "",
            "hF1": v["metrics"].get("hf1"),
            **{f"acc L{i + 1}": a for i, a in enumerate(v["metrics"].get("level_accuracy", []))},
            "stage 2": v["metrics"].get("share_stage2"),
            "held out": v["params"].get("n_test"),
            "train s": v["params"].get("train_s"),
            "predicted": v["predicted"],
        }
        for v in versions
    ]
)
st.dataframe(table, hide_index=True, width="stretch", column_config={"hF1": st.column_config.NumberColumn(format="%.4f")})

st.subheader("Compare")
ids = [v["id"] for v in versions]
c1, c2 = st.columns(2)
new_id = c1.selectbox("Version", ids, key=f"cmp_new_{state}", format_func=lambda i: f"#{i} ({by_id[i]['status']})")
others = [i for i in ids if i != new_id]
if not others:
    st.caption("Only one version so far: retrain to compare.")
else:
    default = others.index(active["id"]) if active and active["id"] in others else 0
    old_id = c2.selectbox(
        "against", others, index=default, key=f"cmp_old_{state}_{new_id}", format_func=lambda i: f"#{i} ({by_id[i]['status']})"
    )
    cmp = cache.comparison(old_id, new_id)
    st.caption(
        f"On the {cmp['n']:,} held-out products of #{new_id}, against today's labels."
        + ("" if cmp["same_split"] else f" #{old_id} was trained with another split, so it may have seen some of them.")
    )
    levels = pd.DataFrame(
        [
            {
                "level": f"L{r['level']}",
                f"accuracy #{old_id}": r["old"]["accuracy"],
                f"accuracy #{new_id}": r["new"]["accuracy"],
                f"macro-F1 #{old_id}": r["old"]["macro_f1"],
                f"macro-F1 #{new_id}": r["new"]["macro_f1"],
            }
            for r in cmp["levels"]
        ]
    )
    st.dataframe(levels, hide_index=True, width="stretch")
    st.markdown(f"**Nodes that changed** ({len(cmp['nodes'])}: new categories first, then by size of the F1 change)")
    if cmp["nodes"]:
        st.dataframe(
            pd.DataFrame(cmp["nodes"]).rename(columns={"old_f1": f"F1 #{old_id}", "new_f1": f"F1 #{new_id}", "delta": "change"}),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("No node's F1 changed by half a point or more.")

st.subheader("Activate")
confirmation()
choice = st.selectbox(
    "Version to make active",
    ids,
    key=f"activate_pick_{state}",
    format_func=lambda i: f"#{i} ({by_id[i]['status']}, hF1 {by_id[i]['metrics'].get('hf1', float('nan')):.4f})",
)
chosen = by_id[choice]
if chosen["status"] == "active":
    st.caption(f"#{choice} is the active version.")
elif not chosen["predicted"]:
    st.caption(
        f"#{choice} has no stored predictions (trained with `core train`, never predicted), so it cannot be made active here."
    )
else:
    verb = "Roll back to" if active and choice < active["id"] else "Activate"
    if st.button(f"{verb} #{choice}…", key="activate_btn", disabled=not may("activate_model")):
        request(
            f"{verb} model version #{choice}? Its stored predictions replace #{active['id'] if active else '-'}'s on every page",
            "activate_model",
            version_id=choice,
            expected={v["id"]: v["version"] for v in (chosen, active) if v},
        )
        st.rerun()
