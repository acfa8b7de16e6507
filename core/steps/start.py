"""What `make run` does before it serves, in one process: upgrade the schema, ingest the catalogue, embed, train and
predict; each skipped when what it is made from has not changed since the last start, so a second start with
nothing changed is a few queries and a file read, not seven processes re-reading the catalogue.

- ingest is skipped when the catalogue file's bytes, the image files (name, size, modification time), the ingest
  settings and the database's stamp (`db_stamp`) are those the last ingest of this database ended with;
- embed, train and predict are skipped together when the database's stamp and the chosen encoders are those the
  last start ended with (any audited change to the data, a new model version or new predictions is a new stamp);
  otherwise each runs and skips what it finds done itself (the embedding cache, the model's data key, the stored
  predictions' key).
The records are `start-*.run.json` (`core.runs.RunRecord`) under the data folder.

A first start on a database (no model version yet) whose catalogue has titles and photos embeds the titles only and
trains its first model on them (`first_model_choice`): the app serves that model's predictions about half as soon,
and the fill-in job behind it embeds the photos, trains the model with photos and makes it the active one
(`core.steps.fill`). `CURATOR_TEXT_FIRST=0`: photos before serving, one model.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from core.config import data_dir
from core.data.ingest import find_catalog_file
from core.embed.choice import EncoderChoice, chosen_encoders
from core.embed.encoders import export_ahead
from core.embed.onnx_backend import remove_partial_graphs
from core.keys import content_key
from core.runs import RunRecord
from core.steps.embed import embed
from core.steps.ingest import ingest
from core.steps.predict import predict
from core.steps.train import train
from db.models import AuditEvent, Label, ModelVersion, Prediction, Product
from db.predictions import TEXT_FIRST
from db.session import get_sessionmaker, masked_url, upgrade

TEXT_FIRST_ENV = "CURATOR_TEXT_FIRST"
# audit events that change nothing a step reads (who may sign in): they do not make the data "changed"
PEOPLE_ACTIONS = ("add_user", "change_role", "disable_user", "enable_user", "set_password")


def db_stamp(db_url: str) -> dict[str, Any]:
    """What the steps' inputs in the database come to: the last audit event (other than user management), product
    and label counts, the last model version and the last prediction row."""
    with get_sessionmaker(db_url)() as s:
        return {
            "audit": s.scalar(select(func.max(AuditEvent.id)).where(AuditEvent.action.not_in(PEOPLE_ACTIONS))) or 0,
            "products": s.scalar(select(func.count(Product.id))) or 0,
            "labels": s.scalar(select(func.count(Label.id))) or 0,
            "model_version": s.scalar(select(func.max(ModelVersion.id))) or 0,
            "prediction": s.scalar(select(func.max(Prediction.id))) or 0,
        }


def files_stamp(root: Path) -> str:
    """A content key of every file under `root`: relative name, size and modification time (no file is read)."""
    entries: list[tuple[str, int, int]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    else:
                        st = entry.stat()
                        entries.append((os.path.relpath(entry.path, root), st.st_size, st.st_mtime_ns))
        except OSError:
            continue
    return content_key(sorted(entries))


def ingest_key(catalog: str | Path, *, platform: str, images_root: str | Path | None, db_url: str) -> str:
    """The key of an ingest: the catalogue file's bytes, its images' stamp, the platform and the database."""
    path = find_catalog_file(catalog)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    root = Path(images_root) if images_root else path.parent
    return content_key(str(path.resolve()), digest, files_stamp(root), platform, str(root.resolve()), masked_url(db_url))


def record_path(name: str, db_url: str) -> Path:
    return data_dir() / "runs" / f"start-{name}-{content_key(masked_url(db_url), length=10)}.run.json"


def unchanged(name: str, db_url: str, inputs: dict[str, Any]) -> bool:
    """Whether the last start's step `name` on this database ended with these inputs."""
    last = RunRecord.read(record_path(name, db_url))
    return last is not None and last.outputs.get("inputs") == inputs


def remember(record: RunRecord, name: str, db_url: str, inputs: dict[str, Any]) -> None:
    record.outputs["inputs"] = inputs
    record.write(record_path(name, db_url))


def advance_models_record(db_url: str, before: dict[str, Any], after: dict[str, Any]) -> bool:
    """After the fill-in's model with photos (`core.steps.fill.photo_model`): the last start's embed/train/predict
    record, when it held the stamp `before`, now holds `after`, so that the next start does not check those steps
    again for a change it made itself. The ingest record follows the same way. Returns whether it did."""
    choice = chosen_encoders()
    inputs = {"db": before, "encoders": [choice.text, choice.image]}
    last = RunRecord.read(record_path("models", db_url))
    if last is None or last.outputs.get("inputs") != inputs:
        return False
    remember(last, "models", db_url, {**inputs, "db": after})
    ingested = RunRecord.read(record_path("ingest", db_url))
    if ingested is not None and (ingested.outputs.get("inputs") or {}).get("db") == before:
        remember(ingested, "ingest", db_url, {**ingested.outputs["inputs"], "db": after})
    return True


def ingest_step(db_url: str, catalog: str | Path, *, platform: str, images_root, log: Callable[[str], None]) -> str | None:
    """Ingest `catalog` unless nothing changed since the last start on this database; returns the ingest's key when
    it ran (`prepare` records it once every step is done), None when skipped."""
    key = ingest_key(catalog, platform=platform, images_root=images_root, db_url=db_url)
    if unchanged("ingest", db_url, {"key": key, "db": db_stamp(db_url)}):
        log(f"ingest: {catalog} and its images are unchanged since the last start: skipped")
        return None
    report = ingest(catalog, platform=platform, db_url=db_url, images_root=images_root)
    log(report.summary())
    return key


def first_model_choice(db_url: str, choice: EncoderChoice) -> EncoderChoice | None:
    """The encoders of a first start's first model: the chosen text encoder alone, when the chosen encoders read
    photos too, no model version was ever trained on this database and its products have titles and photos
    (`CURATOR_TEXT_FIRST=0`: never); None: the chosen encoders, photos embedded before serving."""
    if choice.image is None or os.environ.get(TEXT_FIRST_ENV, "1").strip() == "0":
        return None
    with get_sessionmaker(db_url)() as s:
        if s.scalar(select(func.count(ModelVersion.id))):
            return None
        photos = s.scalar(select(func.count(Product.id)).where(Product.image_status == "ok")) or 0
        titled = s.scalar(select(func.count(Product.id)).where(func.length(func.trim(Product.title)) > 0)) or 0
    return EncoderChoice(text=choice.text, image=None) if photos and titled else None


def models_needed(db_url: str) -> bool:
    """Whether the database or the chosen encoders changed since the last start's embed/train/predict."""
    choice = chosen_encoders()
    return not unchanged("models", db_url, {"db": db_stamp(db_url), "encoders": [choice.text, choice.image]})


def finish_export(exporting, *, needed: bool) -> None:
    """The ONNX export `export_ahead` started beside the ingest: waited for when the model steps will embed; stopped
    otherwise (a start with nothing changed serves without exporting: the first embed that needs a graph, here or in
    the app, exports it then), its partial file removed."""
    if needed:
        exporting.join()
        return
    exporting.terminate()
    exporting.join(10)
    remove_partial_graphs(exporting.pid)


def models_step(db_url: str, *, progress=None, log: Callable[[str], None] = print) -> RunRecord | None:
    """Embed, train (only when the data changed) and predict with the active model; skipped (None) when the database
    and the chosen encoders are as the last start left them. A first start trains on the titles alone
    (`first_model_choice`); the photos and the model with photos follow behind the served app."""
    choice = chosen_encoders()
    encoders = [choice.text, choice.image]
    if not models_needed(db_url):
        log("embed, train, predict: nothing changed since the last start: skipped")
        return None
    first = first_model_choice(db_url, choice)
    record = RunRecord("start-models", settings={"encoders": encoders, "first_model": first and [first.text, None]})
    feats = embed(db_url, choice=choice, embed_choice=first, progress=progress)
    for modality, stats in feats.stats.items():
        log(f"{modality} ({feats.encoder_ids[modality]}): {stats}")
    record.stage("embed")
    if first is not None:
        log(f"first model: {first.describe()}; the photos and the model with them follow in the background")
    train(db_url, choice=first, extra_params={TEXT_FIRST: True} if first else None, progress=progress, log=log)
    record.stage("train")
    predict(db_url, progress=progress, log=log)
    record.stage("predict")
    return record


def prepare(
    db_url: str, catalog: str | Path, *, platform: str, images_root=None, progress=None, log: Callable[[str], None] = print
) -> dict[str, bool]:
    """Everything `make run` needs before it serves: {step: whether it ran}. The records of the steps that ran are
    written once all are done, with the database's stamp at that point (what the next start compares with)."""
    upgrade(db_url)
    record = RunRecord("start-ingest", settings={"catalog": str(catalog), "platform": platform})
    choice = chosen_encoders()
    exporting = export_ahead([choice.text, choice.image])  # a first start: beside the ingest
    needed = False
    try:
        key = ingest_step(db_url, catalog, platform=platform, images_root=images_root, log=log)
        needed = models_needed(db_url)
    finally:
        if exporting is not None:
            finish_export(exporting, needed=needed)
    record.stage("ingest")
    models = models_step(db_url, progress=progress, log=log)
    ran = {"ingest": key is not None, "models": models is not None}
    stamp = db_stamp(db_url)
    if key is not None or models is not None:  # the database changed: both records follow its new stamp
        key = key or ingest_key(catalog, platform=platform, images_root=images_root, db_url=db_url)
        remember(record, "ingest", db_url, {"key": key, "db": stamp})
        choice = chosen_encoders()
        remember(models or RunRecord("start-models"), "models", db_url, {"db": stamp, "encoders": [choice.text, choice.image]})
    return ran
