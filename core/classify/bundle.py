"""A model version as one object: `ModelBundle` with `fit`, `features`, `predict`, `save`, `load` and a manifest.

A bundle is the production classifier: the label-free parts (TF-IDF projection of titles, the title-photo
aligner that makes the joint space), the TF-IDF + linear SVM over full paths, and the two stacked stages of the
cascade (text-only, then late fusion where stage 1 is unsure). Its `Manifest` says what it was made from and how
it scores: encoders (ids with versions, and the registry names to embed new products with), the feature blocks
it reads, the taxonomy version, the split, the threshold and the held-out metrics.

On disk (`save`): one folder with `manifest.json` and one file or folder per member (`MEMBERS`). Adding a
member is one entry of `MEMBERS` plus its fitting step in `fit`. Pure: no database; the steps in `core.steps`
read labels and write model versions.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.classify.cascade import CascadeResult, TwoStageCascade, choose_threshold, threshold_sweep
from core.classify.compare import node_f1
from core.classify.estimator import HierarchicalClassifier
from core.classify.models import (
    JOINT_DIM,
    JOINT_EPOCHS,
    STACKED,
    TEXT_MODALITIES,
    TFIDF_DIM,
    ModelSpec,
    add_svm,
    fit_model,
    inputs,
    score,
    stack_model,
)
from core.classify.stacking import StackedFusion
from core.classify.taxonomy import TaxonomyTree
from core.config import data_dir
from core.data.dataset import Catalogue
from core.data.split import Split, fixed_split
from core.embed.features import Features
from core.embed.joint import JointAligner
from core.embed.tfidf import TfidfProjector, TfidfSvmScores
from core.keys import content_key

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]
STAGE1, STAGE2 = "text-only", "late-fusion"
SPLIT_RULE = "hash of (platform, external id): 70% fit / 10% calibration / 20% held out"
FORMAT = 1


@dataclass(frozen=True)
class Member:
    """A fitted part of a bundle: its class (with `save(path)` / `load(path, ...)`) and its name on disk."""

    cls: type
    filename: str
    takes_device: bool = False

    def load(self, folder: Path, device=None):
        path = folder / self.filename
        return self.cls.load(path, device=device) if self.takes_device else self.cls.load(path)


MEMBERS: dict[str, Member] = {
    "aligner": Member(JointAligner, "joint.pt", takes_device=True),
    "projector": Member(TfidfProjector, "tfidf"),
    "svm": Member(TfidfSvmScores, "svm"),
    "stage1": Member(StackedFusion, "stage1", takes_device=True),
    "stage2": Member(StackedFusion, "stage2", takes_device=True),
}
# a stage without text has no SVM to stack with: it is the neural model itself
NEURAL_STAGE = {
    "stage1": Member(HierarchicalClassifier, "stage1", takes_device=True),
    "stage2": Member(HierarchicalClassifier, "stage2", takes_device=True),
}
MIN_PHOTOS = 10  # photos among the fit rows for an image model
MIN_PAIRS = 50  # title-photo pairs among the fit rows for the joint (title-photo) aligner
MIN_LABELLED = 20
MIN_PER_LEAF_HINT = 5


class NotEnoughData(ValueError):
    """Training refused: too few labelled products or categories (the message says how many and what is needed)."""


@dataclass
class Plan:
    """Which modalities a catalogue offers and so which members a bundle fits; `skipped` says what was left out, why."""

    text: bool
    image: bool
    joint: bool
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def stage1_inputs(self) -> tuple[str, ...]:
        return TEXT_MODALITIES if self.text else ("image",)

    @property
    def stage2_inputs(self) -> tuple[str, ...] | None:
        """The multimodal stage's blocks, or None when one modality is all there is (a single-stage cascade)."""
        if not (self.text and self.image):
            return None
        return (*TEXT_MODALITIES, "image", *(("joint",) if self.joint else ()))

    @property
    def feature_keys(self) -> list[str]:
        keys = [*self.stage1_inputs, *(self.stage2_inputs or ())]
        return [*dict.fromkeys(keys), *(("svm",) if self.text else ())]

    def describe(self) -> str:
        used = [m for m, on in (("text", self.text), ("photos", self.image), ("joint", self.joint)) if on]
        stages = "two stages" if self.stage2_inputs else "one stage"
        notes = "; ".join(f"{k}: {v}" for k, v in self.skipped.items())
        return f"modalities: {', '.join(used)} ({stages})" + (f"; skipped {notes}" if notes else "")


def plan_for(cat: Catalogue, feats: Features, split: Split) -> Plan:
    """What `cat` offers: text (non-empty titles), photos (at least MIN_PHOTOS in the fit rows), title-photo pairs."""
    n_text = sum(1 for i in split.fit if cat.titles[i].strip())
    photos = feats.masks["image"][split.fit] if "image" in feats.masks else np.zeros(len(split.fit), bool)
    n_photos = int(photos.sum())
    text, image = n_text > 0 and "title" in feats.blocks, n_photos >= MIN_PHOTOS
    skipped = {}
    if not text:
        skipped["text"] = "no product has a title: text model, TF-IDF and SVM left out"
    if "image" not in feats.blocks:
        skipped["image"] = "no image encoder chosen (embed --image none)"
    elif not image:
        skipped["image"] = f"{n_photos} products with a readable photo among the fit rows (at least {MIN_PHOTOS} needed)"
    pairs = sum(1 for i, ok in zip(split.fit, photos) if ok and cat.titles[i].strip())
    joint = text and image and pairs >= MIN_PAIRS
    if text and image and not joint:
        skipped["joint"] = f"{pairs} title-photo pairs among the fit rows (at least {MIN_PAIRS} needed for the aligner)"
    return Plan(text=text, image=image, joint=joint, skipped=skipped)


def check_enough(cat: Catalogue) -> None:
    """Refuse clearly when `cat` (labelled products) is too small to train on."""
    leaves = {tuple(p) for p in cat.labels}
    problems = []
    if len(cat) < MIN_LABELLED:
        problems.append(f"{len(cat)} labelled products (at least {MIN_LABELLED} needed)")
    if len(leaves) < 2:
        problems.append(f"{len(leaves)} category in use (at least 2 needed: there is nothing to choose between)")
    if not any(t.strip() for t in cat.titles) and not any(cat.images):
        problems.append("no product has a title or a photo")
    if problems:
        raise NotEnoughData(
            "not enough data to train: "
            + "; ".join(problems)
            + f". Ingest more labelled products (a few per category, {MIN_PER_LEAF_HINT}+ is a useful minimum) "
            "or map a platform's categories onto the master taxonomy."
        )


@dataclass
class Manifest:
    """What a bundle was made from and how it scored (`manifest.json`; also the model version's params)."""

    encoders: dict[str, str]  # modality -> encoder id (name, weights fingerprint, version)
    encoder_choice: dict[str, str | None]  # {"text": registry name, "image": registry name or None}
    feature_keys: list[str]
    threshold: float
    data_key: str
    seed: int = 0
    split: str = SPLIT_RULE
    n_fit: int = 0
    n_test: int = 0
    stage1: str = STACKED[STAGE1]
    stage2: str = STACKED[STAGE2]
    stacking: dict[str, list[float]] = field(default_factory=dict)
    node_ids: dict[str, int] = field(default_factory=dict)  # path -> database node id, filled in by the train step
    taxonomy_version: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    train_s: float = 0.0
    step_s: dict[str, float] = field(default_factory=dict)
    modalities: dict[str, Any] = field(default_factory=lambda: {"text": True, "image": True, "joint": True, "skipped": {}})
    members: dict[str, str] = field(default_factory=lambda: dict.fromkeys(MEMBERS, "stacked"))
    format: int = FORMAT

    def params(self) -> dict[str, Any]:
        """The model version's `params` column: the manifest without the metrics (stored in their own column)."""
        out = asdict(self)
        out.pop("metrics")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known.setdefault("encoder_choice", {"text": "minilm", "image": "efficientnet-lite0"})
        known.setdefault("feature_keys", ["title", "tfidf", "image", "joint", "svm"])
        return cls(**known)


def data_key(cat: Catalogue, encoder_ids: dict[str, str]) -> str:
    """Identity of what a model learns from: product ids, label paths, encoders (equal key: nothing to retrain).

    Stored in every model version's params and compared with the database's state at each `train` and `predict`,
    so its bytes must not change between releases: it keeps the formula model versions were registered with (not
    `content_key`, which would make every existing installation retrain once for nothing).
    """
    h = hashlib.sha256(json.dumps(encoder_ids, sort_keys=True).encode())
    h.update(cat.product_ids.tobytes())
    h.update("\n".join(" > ".join(p) if p else "" for p in cat.labels).encode())
    return h.hexdigest()[:16]


class _Steps:
    """Progress of the fitting steps, and their timings for the log."""

    NAMES = ("features", "tfidf projection and title-photo aligner", "svm and stage-1 and stage-2 models", "evaluation")

    def __init__(self, progress: Progress | None, log: Log):
        self.progress, self.log, self.done = progress, log, 0
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self.started, 1)
        self.started, self.done = now, self.done + 1
        self.log(f"{name}: {self.timings[name]}s")
        if self.progress:
            self.progress("train", self.done, len(self.NAMES))


class ModelBundle:
    """The production classifier of one model version.

    Args:
        seed: seeds the split, every member's fit and the cascade threshold choice.
        device: torch device of the neural members (None: CUDA when available).
        cache_dir: where label-free parts fitted on the same products are reused from (default data/models/cache).
        train_options: overrides of `core.classify.models.TRAIN_OPTIONS` for the neural stages.
    """

    def __init__(self, *, seed: int = 0, device=None, cache_dir: Path | None = None, train_options: dict | None = None):
        self.seed, self.device = seed, device
        self.cache_dir = cache_dir
        self.train_options = dict(train_options or {})
        self.members: dict[str, Any] = {}
        self.manifest: Manifest | None = None

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        cat: Catalogue,
        feats: Features,
        *,
        encoder_choice: dict[str, str | None],
        split: Split | None = None,
        progress: Progress | None = None,
        log: Log = print,
    ) -> ModelBundle:
        """Fit every member the catalogue's modalities allow (`plan_for`) on `cat` (labelled products) and `feats`
        (its embeddings: "title", and "image" where photos exist).

        Adds the blocks "tfidf", "joint" and "svm" to `feats` where fitted. The threshold is chosen on
        `split.calib`, the metrics measured on `split.test` (default `fixed_split`, the same products for every
        version). Raises `NotEnoughData` when `cat` is too small.
        """
        check_enough(cat)
        steps = _Steps(progress, log)
        steps("features")  # `feats` come ready-made; the caller records how long embedding took
        started = time.perf_counter()
        split = split if split is not None else fixed_split(cat, seed=self.seed)
        tree = TaxonomyTree.from_paths(cat.labels)
        plan = plan_for(cat, feats, split)
        log(plan.describe())
        self._fit_label_free(cat, feats, split, plan, steps=steps, log=log)
        self._fit_stages(cat, feats, split, tree, plan)
        steps("svm and stage-1 and stage-2 models")
        metrics, threshold = self._evaluate(feats, cat.labels, split, tree, plan)
        steps("evaluation")
        self.manifest = self._manifest(cat, feats, split, plan, encoder_choice, threshold, metrics)
        self.manifest.train_s, self.manifest.step_s = round(time.perf_counter() - started, 1), steps.timings
        return self

    def _manifest(self, cat, feats, split, plan: Plan, encoder_choice, threshold: float, metrics) -> Manifest:
        stacking = {n: [m.temperature, m.alpha] for n, m in self.members.items() if isinstance(m, StackedFusion)}
        return Manifest(
            encoders=dict(feats.encoder_ids),
            encoder_choice=dict(encoder_choice),
            feature_keys=plan.feature_keys,
            threshold=threshold,
            data_key=data_key(cat, feats.encoder_ids),
            seed=self.seed,
            n_fit=len(split.fit),
            n_test=len(split.test),
            stacking=stacking,
            metrics=metrics,
            modalities={"text": plan.text, "image": plan.image, "joint": plan.joint, "skipped": plan.skipped},
            members={
                n: ("stacked" if isinstance(m, StackedFusion) else "neural") if n.startswith("stage") else "part"
                for n, m in self.members.items()
            },
        )

    def _cached(self, kind: str, key: str, fit: Callable[[], Any], member: str, log: Log) -> Any:
        """A label-free part fitted on the same products before (from the cache folder), or fit and store it."""
        folder = (self.cache_dir or data_dir() / "models" / "cache") / f"{kind}-{key}"
        if (folder / "done").exists():
            log(f"{kind}: reused (fitted on the same products before)")
            return MEMBERS[member].cls.load(folder / kind, **({"device": self.device} if MEMBERS[member].takes_device else {}))
        part = fit()
        folder.mkdir(parents=True, exist_ok=True)
        part.save(folder / kind)
        (folder / "done").write_text("ok")
        return part

    def _fit_label_free(self, cat: Catalogue, feats: Features, split: Split, plan: Plan, *, steps: _Steps, log: Log) -> None:
        """The TF-IDF projection (with text) and the title-photo aligner (with enough pairs), fitted on split.fit
        (or reused) side by side (two threads: the SVD's BLAS and torch's kernels release the GIL, and each is on
        one core); adds the blocks "tfidf" and "joint", computed once."""
        jobs: dict[str, Callable[[], Any]] = {}
        if plan.text:
            fit_titles = [cat.titles[i] for i in split.fit]
            key = content_key(fit_titles, self.seed)
            jobs["projector"] = lambda: self._cached(
                "tfidf", key, lambda: TfidfProjector(dim=TFIDF_DIM, seed=self.seed).fit(fit_titles), "projector", log
            )
        if plan.joint:
            with_photo = split.fit[feats.masks["image"][split.fit]]
            titles, images = feats.blocks["title"][with_photo], feats.blocks["image"][with_photo]
            key = content_key(feats.encoder_ids, titles, images, self.seed)
            fit = lambda: JointAligner(dim=JOINT_DIM, epochs=JOINT_EPOCHS, seed=self.seed).fit(titles, images)  # noqa: E731
            jobs["aligner"] = lambda: self._cached("joint", key, fit, "aligner", log)
        with ThreadPoolExecutor(2) as pool:
            running = {name: pool.submit(job) for name, job in jobs.items()}
            self.members.update({name: job.result() for name, job in running.items()})
        self._add_label_free_blocks(cat, feats)
        steps("tfidf projection and title-photo aligner")

    def _add_label_free_blocks(self, cat: Catalogue, feats: Features) -> None:
        if "projector" in self.members:
            feats.blocks["tfidf"] = self.members["projector"].transform(cat.titles)
            feats.masks["tfidf"] = np.ones(len(cat), bool)
        if "aligner" in self.members:
            joint = self.members["aligner"].joint(feats.blocks["title"], feats.blocks["image"], feats.masks["image"])
            feats.blocks["joint"], feats.masks["joint"] = joint.astype(np.float32), np.ones(len(cat), bool)

    def _fit_stages(self, cat: Catalogue, feats: Features, split: Split, tree: TaxonomyTree, plan: Plan) -> None:
        """The SVM (with text; adds block "svm") and the neural stages, each stacked with the SVM on split.calib.

        The SVM (one liblinear thread) and the neural models (one torch thread each; initialisation and dropout
        seeded per model, see core.classify.fusion.seed_dropout) are independent: they train side by side.
        """
        specs = [ModelSpec(STAGE1 if plan.text else "image-only", "late", plan.stage1_inputs)]
        if plan.stage2_inputs:
            specs.append(ModelSpec(STAGE2, "late", plan.stage2_inputs))
        with ThreadPoolExecutor(3) as pool:
            svm_job = (
                pool.submit(add_svm, feats, cat.titles, cat.labels, split.fit, descriptions=cat.descriptions, seed=self.seed)
                if plan.text
                else None
            )
            jobs = [
                pool.submit(
                    fit_model,
                    spec,
                    feats,
                    cat.labels,
                    split.fit,
                    tree=tree,
                    seed=self.seed,
                    device=self.device,
                    **self.train_options,
                )
                for spec in specs
            ]
            svm = svm_job.result() if svm_job else None
            neural = [job.result() for job in jobs]
        if svm is not None:
            self.members["svm"] = svm
        for name, model in zip(("stage1", "stage2"), neural):
            self.members[name] = stack_model(model, svm, feats, cat.labels, split.calib) if svm is not None else model

    def _evaluate(self, feats: Features, labels: list, split: Split, tree: TaxonomyTree, plan: Plan):
        """Threshold chosen on split.calib (0: no routing with one stage); hF1, per-level scores and per-leaf F1 of
        the cascade on split.test. Returns (metrics, threshold)."""
        stage1, stage2 = self.members["stage1"], self.members.get("stage2")
        if stage2 is not None:
            X, masks = inputs(feats, plan.feature_keys, split.calib)
            sweep = threshold_sweep(stage1, stage2, X, tree.encode([labels[i] for i in split.calib]), masks=masks)
            self.threshold_choice_ = {"sweep_on_calibration": sweep, "chosen": choose_threshold(sweep)}
        else:
            self.threshold_choice_ = {"sweep_on_calibration": [], "chosen": {"threshold": 0.0, "note": "one stage"}}
        threshold = float(self.threshold_choice_["chosen"]["threshold"])
        X, masks = inputs(feats, plan.feature_keys, split.test)
        result = TwoStageCascade(stage1, stage2 or stage1, threshold=threshold).predict(X, masks=masks)
        truth = [labels[i] for i in split.test]
        report = score(tree, truth, result.prediction.nodes)
        pairs = [(" > ".join(t), " > ".join(p)) for t, p in zip(truth, tree.decode(result.prediction.nodes))]
        metrics = {
            "hf1": report["hF1"],
            "level_accuracy": report["level_accuracy"],
            "level_macro_f1": report["level_macro_f1"],
            "path_validity": report["path_validity"],
            "share_stage2": float((result.stage == 2).mean()),
            "per_node_f1": {path: {"f1": r["f1"], "support": r["support"]} for path, r in node_f1(pairs).items()},
            "test_product_ids": feats.product_ids[split.test].tolist(),
        }
        return metrics, threshold

    # ------------------------------------------------------------------ apply

    @property
    def tree(self) -> TaxonomyTree:
        return self.members["stage1"].tree_

    @property
    def cascade(self) -> TwoStageCascade:
        stage1 = self.members["stage1"]
        return TwoStageCascade(stage1, self.members.get("stage2", stage1), threshold=self.manifest.threshold)

    def features(self, cat: Catalogue, feats: Features) -> Features:
        """Add the bundle's derived blocks ("tfidf", "joint", "svm", as fitted) to `feats` (embeddings of `cat`)."""
        if ("projector" in self.members and "tfidf" not in feats.blocks) or (
            "aligner" in self.members and "joint" not in feats.blocks
        ):
            self._add_label_free_blocks(cat, feats)
        if "svm" in self.members and "svm" not in feats.blocks:  # fit's features hold the SVM's scores already
            feats.blocks["svm"] = self.members["svm"].transform(cat.titles, cat.descriptions)
            feats.masks["svm"] = np.ones(len(cat), bool)
        return feats

    def predict(self, cat: Catalogue, feats: Features) -> CascadeResult:
        """The cascade's placement of every product of `cat` (every prediction a valid path); a product labelled at
        an inner node (its platform category mapped onto a common ancestor) is placed below that node."""
        feats = self.features(cat, feats)
        X, masks = inputs(feats, self.manifest.feature_keys, np.arange(len(cat)))
        return self.cascade.predict(X, masks=masks, within=self.tree.within(cat.labels))

    # ------------------------------------------------------------------ storage

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, part in self.members.items():
            part.save(folder / MEMBERS[name].filename)
        tmp = folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(asdict(self.manifest), indent=2, sort_keys=True, default=float))
        tmp.replace(folder / "manifest.json")
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, device=None, params: dict[str, Any] | None = None) -> ModelBundle:
        """A saved bundle. Folders saved before bundles had a manifest take it from the model version's `params`."""
        folder = Path(folder)
        path = folder / "manifest.json"
        if path.exists():
            manifest = Manifest.from_dict(json.loads(path.read_text()))
        elif params is not None:
            manifest = Manifest.from_dict(params)
        else:
            raise FileNotFoundError(f"{path} is missing and no model-version params were given")
        bundle = cls(seed=manifest.seed, device=device)
        for name, kind in manifest.members.items():
            member = NEURAL_STAGE[name] if kind == "neural" else MEMBERS[name]
            bundle.members[name] = member.load(folder, device=device)
        bundle.manifest = manifest
        return bundle
