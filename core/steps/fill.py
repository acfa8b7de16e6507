"""What `make run` fills in behind the served app: the model with photos (after a first start served a model of the
titles alone, `core.steps.start.first_model_choice`), discovery on the default node, the catalogue map and the label
scores, in one background job (`core.jobs`, kind "fill"), each only when it is missing (the map is cached by content
anyway). The app is useful before they finish: the pages that need them say what is running.

Discovery and then the label scores run in this process while the catalogue map runs in a second process
(`parallel`, the default on a machine with two cores or more) that starts once discovery's embedding is done: from
there on each trains and projects on one thread, so a single process would leave a core idle. Their progress is
reported as one: the running steps' stages and one fraction of the whole (`Overall`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from core.embed.choice import chosen_encoders
from core.runs import RunRecord
from core.steps.discover import LAST_PARALLEL_STAGES, MIN_PRODUCTS, discover
from core.steps.maps import build_catalogue_map
from core.steps.predict import predict
from core.steps.review import run_review
from core.steps.start import advance_models_record, db_stamp, record_path
from core.steps.train import train
from core.torch_runtime import spawn
from db import predictions as preds
from db import proposals as props
from db import review
from db.models import AuditEvent
from db.repo import node_by_path
from db.session import get_sessionmaker, transaction

DEFAULT_NODE = "Footwear > Shoes"
STEPS = ("model", "discover", "map", "review")
# each step's share of the whole job's progress bar (its share of the time on the default catalogue: the photos and
# the model with them 290 s, then 186, 116, 78 s)
WEIGHTS = {"model": 0.43, "discover": 0.27, "map": 0.17, "review": 0.13}
PARALLEL_ENV = "CURATOR_FILL_PARALLEL"  # "0": every step in this process, one after the other
Progress = Callable[[str, int, int], None]


def missing(db_url: str, node_path: str = DEFAULT_NODE) -> list[str]:
    """The steps of `STEPS` whose results are not there yet (the map is always listed: it checks its own cache;
    "model": the active model is a first start's model of the titles alone while the chosen encoders read photos)."""
    with get_sessionmaker(db_url)() as s:
        node = node_by_path(s, node_path)
        proposals = bool(node is not None and props.list_proposals(s, parent_node_id=node.id))
        queue = bool(review.counts(s))
        first = preds.is_text_first(preds.active_model_version(s))
    wanted = {
        "model": first and chosen_encoders().image is not None,
        "discover": node is not None and not proposals,
        "map": True,
        "review": not queue,
    }
    return [step for step in STEPS if wanted[step]]


def photo_model(db_url: str, *, progress: Progress | None = None, log: Callable[[str], None] = print) -> int | None:
    """The model a first start's model of the titles alone makes way for: the photos embedded, a model trained on
    titles and photos and made the active one (audited, undoable like any activation), then its predictions.
    Not activated when someone activated another model meanwhile; returns the new version's id. When nothing but
    this changed the database meanwhile, the last start's records follow (`start.advance_models_record`)."""
    before = db_stamp(db_url)
    version_id = train(db_url, activate=False, progress=progress, log=log)  # embeds the photos (the titles are cached)
    if version_id is None:
        return None
    factory = get_sessionmaker(db_url)
    with transaction(factory) as s:
        replace = preds.is_text_first(preds.active_model_version(s))
        if replace:
            preds.activate_model_version(s, version_id=version_id, actor="fill-in")
            s.flush()
            activation = s.scalar(select(func.max(AuditEvent.id)))
    if not replace:
        log(f"model version #{version_id} (with photos) not activated: another model was activated meanwhile")
        return version_id
    log(f"model version #{version_id} (titles and photos) is the active model")
    predict(db_url, progress=progress, log=log)
    after = db_stamp(db_url)
    ours = after["audit"] == activation and all(after[k] == before[k] for k in ("products", "labels"))
    if ours and after["model_version"] == version_id:
        advance_models_record(db_url, before, after)
    return version_id


class Overall:
    """One progress report for steps that run at once: `progress(text, done, total)` gets the running steps' stages
    ("discover umap: 1/2 · review out-of-fold: 3/4") and the whole job's fraction as done/total in thousandths, each
    step weighted by `WEIGHTS`. A step's stages are not known in advance: its first stage fills half of its share, each
    next one half of what is left (a stage first seen complete, its vectors cached, none), and its end the rest, so
    the bar never moves back. Thread-safe: the second process's reports arrive on a thread of their own."""

    def __init__(self, steps: list[str], progress: Progress | None):
        self.progress, self.lock = progress, threading.Lock()
        total = sum(WEIGHTS[s] for s in steps) or 1.0
        self.weights = {s: WEIGHTS[s] / total for s in steps}
        self.fraction = dict.fromkeys(steps, 0.0)
        self.segment = {s: [None, 0.0, 0.5] for s in steps}  # stage, where it starts, its span
        self.text: dict[str, str] = {}

    def step(self, step: str) -> Progress:
        """The progress(stage, done, total) callback of one step."""
        return lambda stage, done, total: self.update(step, stage, done, total)

    def update(self, step: str, stage: str, done: int, total: int) -> None:
        with self.lock:
            segment = self.segment[step]
            if stage != segment[0] and done < total:  # a stage first seen complete (vectors cached) takes no share
                if segment[0] is not None:
                    segment[1], segment[2] = segment[1] + segment[2], segment[2] / 2
                segment[0] = stage
            if stage == segment[0]:
                share = segment[1] + segment[2] * min(done / max(total, 1), 1.0)
                self.fraction[step] = max(self.fraction[step], share)
            self.text[step] = f"{step} {stage}: {done}/{total}"
            self._report()

    def finished(self, step: str) -> None:
        with self.lock:
            self.fraction[step] = 1.0
            self.text.pop(step, None)
            self._report()

    def _report(self) -> None:
        if self.progress is not None:
            whole = sum(self.weights[s] * f for s, f in self.fraction.items())
            self.progress(" · ".join(self.text.values()) or "finishing", int(round(whole * 1000)), 1000)


def fill_in(
    db_url: str,
    *,
    node_path: str = DEFAULT_NODE,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
    parallel: bool | None = None,
) -> dict[str, Any]:
    """Run the missing steps; `progress(text, done, total)` while they run (`Overall`). Once all are done, what they
    were made from is recorded (`up_to_date`). A step that fails fails the job, after the others ended.

    `parallel` (default: two cores or more and `CURATOR_FILL_PARALLEL` not "0"): the map (`BESIDE`) runs in a second
    process that starts once discovery's embedding, the one stage that uses every core, is done
    (`discover.LAST_PARALLEL_STAGES`; when there is no discovery to run: at once, or after the model with photos);
    the model with photos, discovery and then the label scores run here, on one thread each after discovery.
    """
    done: dict[str, Any] = {}
    made_from = fill_inputs(db_url, node_path)
    steps = missing(db_url, node_path)
    overall = Overall(steps, progress)
    if parallel is None:
        parallel = (os.cpu_count() or 1) >= 2 and os.environ.get(PARALLEL_ENV, "1") != "0"
    here = [s for s in steps if s not in BESIDE]
    aside = [s for s in steps if s in BESIDE]
    beside = _Beside(db_url, aside, overall, log) if parallel and here and aside else None
    if beside is None:
        here = steps
    threads = None
    if beside is not None and "discover" not in here and "model" not in here:
        beside.start()
        threads = one_thread()
    try:
        for step in here:
            log(f"{step}: starting")
            report = overall.step(step)
            if beside is not None and step == "discover":
                report = beside.start_after(report, LAST_PARALLEL_STAGES)
            done[step] = _run_step(step, db_url, node_path, report, log)
            overall.finished(step)
            if step == "model":  # the later steps are made from the data as the new model left it
                made_from = fill_inputs(db_url, node_path)
            if beside is not None and (step == "discover" or (step == "model" and "discover" not in here)):
                if step == "model":
                    beside.start()
                threads = one_thread()  # the label scores next, beside the map: neither needs more than one core
    finally:
        if beside is not None:
            beside.start()  # now, if discovery never got as far as its embedding
            try:
                done.update(beside.result())  # waits; raises what the second process raised
            finally:
                if threads is not None:
                    restore_threads(threads)
    record = RunRecord("fill", settings={"node": node_path}, outputs={"inputs": made_from, "done": done})
    record.write(record_path("fill", db_url))
    return done


def _run_step(step: str, db_url: str, node_path: str, progress: Progress, log: Callable[[str], None]) -> Any:
    if step == "model":
        return photo_model(db_url, progress=progress, log=log)
    if step == "discover":
        try:
            return discover(db_url, node_path=node_path, progress=progress, log=log)
        except ValueError as exc:  # too few products under the node: nothing to discover, not a failure
            log(f"discover: skipped ({exc}; needs {MIN_PRODUCTS})")
            return 0
    if step == "map":
        return bool(build_catalogue_map(db_url, progress=progress, log=log))
    return run_review(db_url, progress=progress, log=log)


# the steps the second process runs: the map (about 116 s on one thread on the default catalogue) beside discovery's
# single-threaded part (about 100 s) and then the label scores (78 s)
BESIDE = ("map",)
# what the second process's libraries may use: one thread each (several threads spinning on a core the other process
# needs slowed both: the label scores took 174 s instead of 78 s beside discovery's embedding)
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}


def one_thread() -> tuple[int, int]:
    """This process's numba (UMAP's neighbour graph) and torch on one thread from now on; returns what they had."""
    import numba
    import torch

    before = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    return before


def restore_threads(before: tuple[int, int]) -> None:
    import numba
    import torch

    numba.set_num_threads(before[0])
    torch.set_num_threads(before[1])


class _Beside:
    """Steps run one after the other in a second process (spawned: a fresh interpreter, no threads or torch state
    inherited, its libraries on one thread each), its progress and log lines passed back through a queue and
    reported here by a listener thread."""

    def __init__(self, db_url: str, steps: list[str], overall: Overall, log: Callable[[str], None]):
        self.db_url, self.steps, self.overall, self.log = db_url, steps, overall, log
        self.process = None
        self.results: dict[str, Any] = {}
        self.error: str | None = None
        self.lock = threading.Lock()

    def start_after(self, report: Progress, stages: tuple[str, ...]) -> Progress:
        """`report`, and the second process started once one of `stages` reports it is complete."""

        def progress(stage: str, done: int, total: int) -> None:
            report(stage, done, total)
            if stage in stages and done >= total:
                self.start()

        return progress

    def start(self) -> None:
        import multiprocessing

        with self.lock:
            if self.process is not None:
                return
            self.log(f"{', '.join(self.steps)}: starting in a second process")
            context = multiprocessing.get_context("spawn")
            self.queue = context.Queue()
            saved = {name: os.environ.get(name) for name in ONE_THREAD}
            os.environ.update(ONE_THREAD)  # the child's environment is this one's when it starts
            try:
                self.process = spawn(_beside_process, (self.db_url, self.steps, self.queue), context=context)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
            self.listener = threading.Thread(target=self._listen, daemon=True)
            self.listener.start()

    def _listen(self) -> None:
        while True:
            try:
                kind, *payload = self.queue.get(timeout=5.0)
            except Exception:  # noqa: BLE001 - queue.Empty: check that the process is still there
                if not self.process.is_alive():
                    self.error = self.error or "the second process ended without a result"
                    return
                continue
            if kind == "progress":
                step, stage, done, total = payload
                self.overall.update(step, stage, done, total)
            elif kind == "log":
                self.log(payload[0])
            elif kind == "done":
                step, result = payload
                self.results[step] = result
                self.overall.finished(step)  # off the bar's text at once, not when the other steps end
            elif kind == "error":
                self.error = payload[0]
                return
            else:  # "end"
                return

    def result(self) -> dict[str, Any]:
        self.listener.join()
        self.process.join(timeout=60)
        if self.error is not None:
            raise RuntimeError(f"{' and '.join(self.steps)} (in the second process) failed: {self.error}")
        return self.results


def _beside_process(db_url: str, steps: list[str], queue) -> None:
    """The second process: each of `steps`, its progress and log sent to the parent."""
    one_thread()
    for step in steps:
        queue.put(("log", f"{step}: starting (second process)"))
        try:
            result = _run_step(
                step,
                db_url,
                DEFAULT_NODE,
                lambda stage, done, total, step=step: queue.put(("progress", step, stage, done, total)),
                lambda line: queue.put(("log", line)),
            )
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent, which fails the job
            queue.put(("error", f"{step}: {type(exc).__name__}: {exc}"))
            raise
        queue.put(("done", step, result))
    queue.put(("end",))


def fill_inputs(db_url: str, node_path: str = DEFAULT_NODE) -> dict[str, Any]:
    """What the fill-in's results are made from: the database's stamp (`core.steps.start.db_stamp`), the encoders."""
    choice = chosen_encoders()
    return {"db": db_stamp(db_url), "encoders": [choice.text, choice.image], "node": node_path}


def up_to_date(db_url: str, node_path: str = DEFAULT_NODE) -> bool:
    """Whether a fill-in would do nothing: no step missing but the map, and the last fill-in finished on the same
    data and encoders (so the map it checked is still up to date). `make run` then starts no job."""
    if missing(db_url, node_path) != ["map"]:
        return False
    last = RunRecord.read(record_path("fill", db_url))
    return last is not None and last.outputs.get("inputs") == fill_inputs(db_url, node_path)
