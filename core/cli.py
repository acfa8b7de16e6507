"""Command line (`python -m core <step>`, or the `curator` console script): one sub-command per pipeline step.

`--db URL` is accepted before or after the sub-command (`python -m core --db URL train`, `python -m core train
--db URL`); without it, `$DATABASE_URL` or ./data/curator.db. Every step except `db` first brings the schema to
the current migration.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

import numpy as np

from core import config, jobs
from core.bench import cross_platform
from core.bench import discovery as discovery_bench
from core.bench import retrain as retrain_bench
from core.bench import review as review_bench
from core.bench.evaluate import evaluate, markdown_table
from core.classify.bundle import NotEnoughData
from core.data import fashion_mnist, google_taxonomy, scale
from core.data.ingest import ColumnMap, IngestError
from core.embed.choice import EncoderChoice, chosen_encoders
from core.embed.encoders import DEFAULT_ENCODERS
from core.engine import ENGINES, open_engine
from core.steps.catalogue import load_catalogue
from core.steps.discover import discover, store_level
from core.steps.embed import catalogue_features, embed, embed_file_titles
from core.steps.fill import DEFAULT_NODE, fill_in, missing, up_to_date
from core.steps.ingest import ingest
from core.steps.mapping import export_mappings, suggest_mappings
from core.steps.maps import build_catalogue_map
from core.steps.predict import predict
from core.steps.review import run_review
from core.steps.standard import export_feed, import_google, suggest_standard
from core.steps.start import prepare
from core.steps.train import train
from db import backup as backups
from db import mappings as maps
from db import proposals as props
from db import review, standards, users
from db.actions import perform
from db.repo import CurationError, node_by_path
from db.session import current_revision, get_sessionmaker, masked_url, transaction, upgrade


def _write_json(path: str, result) -> None:
    """Write a benchmark's result as JSON (folders created) and say where."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=1))
    print(f"written to {path}")


def _tqdm_progress():
    """A progress(stage, done, total) callback drawing one tqdm bar per stage."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="item", file=sys.stderr)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress


def _tqdm_overall():
    """A progress(text, done, total) callback drawing one tqdm bar for a whole job whose steps run side by side
    (`core.steps.fill.Overall`: the text names the running stages, done/total is the fraction of the whole)."""
    from tqdm import tqdm

    bar = None

    def progress(text: str, done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="‰", file=sys.stderr, bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}")
        bar.set_description_str(text, refresh=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.fashion_mnist:
        return _ingest_fashion_mnist(args)
    try:
        report = ingest(
            args.catalog,
            platform=args.platform,
            db_url=args.db,
            mapping=ColumnMap.parse(args.map),
            limit=args.limit,
            images_root=args.images_root,
            actor=args.actor,
            fetch_images=args.fetch_images,
            seed_master=True if args.seed_master else None,
            progress=_tqdm_progress(),
        )
    except IngestError as exc:
        print(f"ingest failed, the database is unchanged:\n{exc}", file=sys.stderr)
        return 2
    print(report.summary())
    for line in report.image_problems[:20]:
        print(f"  image problem: {line}")
    if len(report.image_problems) > 20:
        print(f"  ... {len(report.image_problems) - 20} more image problems (see --json)")
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    return 0


def _ingest_fashion_mnist(args: argparse.Namespace) -> int:
    """Fashion-MNIST's IDX files -> PNGs and products.parquet under the data folder -> ingest as platform zalando."""
    folder = config.data_dir() / "fashion-mnist"
    try:
        parquet = fashion_mnist.write_catalogue(
            folder, root=Path(args.fashion_mnist_dir), limit=args.limit, progress=_tqdm_progress()
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"ingest --fashion-mnist: {exc}", file=sys.stderr)
        return 2
    platform = args.platform if args.platform != config.default_platform() else fashion_mnist.PLATFORM
    report = ingest(
        parquet, platform=platform, db_url=args.db, mapping=fashion_mnist.MAPPING, actor=args.actor, progress=_tqdm_progress()
    )
    print(report.summary())
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    url = args.db
    if args.action == "upgrade":
        upgrade(url)
    print(f"{masked_url(url)}: at revision {current_revision(url)}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """The whole database to one file (default: a time-stamped file under the data folder's backups/)."""
    from datetime import datetime

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else config.data_dir() / "backups" / f"curator-{stamp}{backups.suffix(args.db)}"
    try:
        revision = backups.backup(args.db, out)
    except backups.BackupError as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 2
    print(f"{masked_url(args.db)} (schema revision {revision}) backed up to {out}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Replace the database by a backup; refuses a database holding tables without --yes."""
    try:
        revision = backups.restore(args.db, args.file, overwrite=args.yes)
    except backups.BackupError as exc:
        print(f"restore refused, the database is unchanged: {exc}", file=sys.stderr)
        return 2
    print(f"{masked_url(args.db)} restored from {args.file} (schema revision {revision})")
    head = backups.head_revision(args.db)
    if revision != head:
        print(f"the backup's schema is older than this version's ({head}): `python -m core db upgrade` brings it up to date")
    return 0


def cmd_scale_catalogue(args: argparse.Namespace) -> int:
    """`scale-catalogue`: the generated catalogue (see `core.data.scale` for exactly how it is made)."""
    from tqdm import tqdm

    with tqdm(total=args.size, desc="products", unit="item", file=sys.stderr) as bar:
        report = scale.write(args.out, args.size, seed=args.seed, platform=args.platform, progress=bar.update)
    print(json.dumps(report.as_dict()))
    print(f"{args.size:,} products written to {args.out}")
    print(f"ingest: python -m core ingest --catalog {args.out} --platform {args.platform}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    try:
        recorded = chosen_encoders()  # an option left out keeps the recorded choice (a plain `embed` undoes nothing)
        image = recorded.image if args.image is None else (None if args.image == "none" else args.image)
        choice = EncoderChoice(text=args.text or recorded.text, image=image)
    except ValueError as exc:
        print(f"embed: {exc}", file=sys.stderr)
        return 2
    with open_engine(args.engine, num_cpus=args.ray_cpus) as engine:
        if args.input:  # a Parquet file's titles into the cache, no database
            got = embed_file_titles(
                args.input, column=args.title_column, choice=choice, batch_size=args.batch_size, device=args.device, engine=engine
            )
            print(f"{args.input}: {len(got.ok)} titles ({choice.text}), {got.hits} cached, {got.misses} embedded now")
            return 0
        feats = embed(
            args.db,
            choice=choice,
            descriptions=args.descriptions,
            batch_size=args.batch_size,
            device=args.device,
            progress=_tqdm_progress(),
            engine=engine,
        )
    for modality, stats in feats.stats.items():
        print(f"{modality} ({feats.encoder_ids[modality]}): {stats}")
    print(f"encoders recorded for the later steps: {choice.describe()}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.cross_platform:
        return _evaluate_cross_platform(args)
    with get_sessionmaker(args.db)() as s:
        cat = load_catalogue(s)
    cat = cat.subset(np.flatnonzero(cat.trainable))
    choice = chosen_encoders()
    feats = catalogue_features(cat, choice=choice, device=args.device, progress=_tqdm_progress())
    result = evaluate(
        cat,
        feats,
        seed=args.seed,
        device=args.device,
        progress=_tqdm_progress(),
        text_encoder=choice.text,
        image_encoder=choice.image,
    )
    _write_json(args.out, result)
    print(markdown_table(result["rows"]))
    return 0


def _evaluate_cross_platform(args: argparse.Namespace) -> int:
    """Leave-platform-out between two platforms of the database (`--platforms A,B`), both directions."""
    names = tuple(p.strip() for p in (args.platforms or "").split(",") if p.strip())
    if not names:  # the platforms whose products have master labels
        with get_sessionmaker(args.db)() as s:
            names = tuple(r["platform"] for r in maps.coverage(s) if r["mapped_products"])
    if len(names) != 2:
        print(f"evaluate --cross-platform: name two platforms with --platforms A,B (labelled: {list(names)})", file=sys.stderr)
        return 2
    groups = dict(spec.split("=", 1) for spec in args.group or [])
    try:
        result = cross_platform.run(args.db, names, group_keys=groups, per_leaf=args.per_leaf or None, seed=args.seed)
    except ValueError as exc:
        print(f"evaluate --cross-platform: {exc}", file=sys.stderr)
        return 2
    _write_json(args.out, result)
    print(cross_platform.markdown(result))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    train(
        args.db,
        seed=args.seed,
        force=args.force,
        activate=True if args.activate else None,
        device=args.device,
        progress=_tqdm_progress(),
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    with open_engine(args.engine, num_cpus=args.ray_cpus) as engine:
        predict(args.db, force=args.force, device=args.device, progress=_tqdm_progress(), engine=engine)
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    if args.benchmark:
        return _discover_benchmark(args)
    if args.level is not None:
        n = store_level(args.db, args.node, args.level, device=args.device)
        print(f"{args.node}: {n} open proposals at the level of {args.level} groups of the last run")
        return 0
    if args.if_missing:
        with get_sessionmaker(args.db)() as s:
            node = node_by_path(s, args.node)
            if node is not None and props.list_proposals(s, parent_node_id=node.id):
                print(f"{args.node}: proposals exist already (run without --if-missing to rediscover)")
                return 0
    discover(args.db, node_path=args.node, **_discovery_options(args), progress=_tqdm_progress())
    return 0


def _discover_benchmark(args: argparse.Namespace) -> int:
    tree = {k: v for k, v in (("linkage", args.linkage), ("represent", args.represent), ("default", args.default_k)) if v}
    result = discovery_bench.benchmark(
        args.db,
        node_path=args.node,
        **_discovery_options(args),
        max_products=args.max_products,
        hierarchy=tree,
        bertopic=not args.no_bertopic,
        progress=_tqdm_progress(),
    )
    _write_json(args.out, result)
    print(f"{result['node']}: {result['n_products']} products, {len(result['hidden_types'])} hidden types")
    for name, run in result["runs"].items():
        for level in ("default", "hidden_level"):
            r = run[level]
            print(
                f"{name} [{level}, {r['proposals']} proposals]: ARI {r['ari']:.3f}, NMI {r['nmi']:.3f}, "
                f"purity {r['purity']:.3f}, {r['share_unassigned']:.1%} unassigned, name accuracy {r['name_accuracy']:.3f}"
            )
    return 0


def _discovery_options(args: argparse.Namespace) -> dict:
    unassigned = None if args.max_unassigned < 0 else args.max_unassigned
    return dict(seed=args.seed, device=args.device, min_cluster_size=args.min_cluster_size, max_unassigned=unassigned)


def cmd_review(args: argparse.Namespace) -> int:
    if args.benchmark:
        return _review_benchmark(args)
    if args.if_missing:
        with get_sessionmaker(args.db)() as s:
            if review.counts(s):
                print("a review queue exists already (run without --if-missing to rescore)")
                return 0
    with open_engine(args.engine, num_cpus=args.ray_cpus) as engine:
        run_review(args.db, folds=args.folds, seed=args.seed, device=args.device, progress=_tqdm_progress(), engine=engine)
    return 0


def _review_benchmark(args: argparse.Namespace) -> int:
    result = review_bench.benchmark(
        args.db, share=args.share, folds=args.folds, seed=args.seed, device=args.device, progress=_tqdm_progress()
    )
    _write_json(args.out, result)
    print(f"{result['n_flipped']} of {result['n_products']} labels flipped to a sibling or cousin path")
    for name, r in result["rankings"].items():
        print(f"  {name}: precision@k {r['precision_at_k']:.3f}, recall@k {r['recall_at_k']:.3f}")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    if args.benchmark:
        result = retrain_bench.benchmark(
            args.db, node_path=args.node, seed=args.seed, device=args.device, progress=_tqdm_progress()
        )
        _write_json(args.out, result)
        print(json.dumps({k: v for k, v in result.items() if k != "per_node"}, indent=1))
        return 0
    if args.background:
        job_id = jobs.start(args.db, kind="retrain", user=users.operator(args.actor))
        print(f"retrain job #{job_id} started; its progress is on the Models page and in {jobs.job_log_file(job_id)}")
        return 0
    job_id = jobs.start(args.db, kind="retrain", user=users.operator(args.actor), spawn=False)  # one at a time, also here
    return 0 if jobs.run_job(args.db, job_id) else 1


def cmd_job(args: argparse.Namespace) -> int:
    return 0 if jobs.run_job(args.db, args.job_id) else 1


def cmd_fill_in(args: argparse.Namespace) -> int:
    """`fill-in`: discovery, the catalogue map and label scores where missing; `--background`: as a job, at once."""
    todo = missing(args.db, args.node)
    if not args.background:
        fill_in(args.db, node_path=args.node, progress=_tqdm_overall())
        return 0
    try:
        job_id = jobs.start(args.db, kind="fill", user=users.operator(args.actor), params={"node": args.node})
    except CurationError as exc:  # one is running already (a second start while the first fills in)
        print(f"fill-in: {exc}")
        return 0
    print(f"fill-in job #{job_id} started in the background ({', '.join(todo)}); the pages show its progress")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    """`start` (what `make run` does before serving, in one process): upgrade, ingest, embed, train, predict, each
    skipped when unchanged since the last start (core/steps/start.py); the fill-in job unless it has nothing to do;
    the first admin."""
    try:
        ran = prepare(args.db, args.catalog, platform=args.platform, progress=_tqdm_progress())
    except IngestError as exc:
        print(f"ingest failed, the database is unchanged:\n{exc}", file=sys.stderr)
        return 2
    print("start: " + ", ".join(f"{step} {'ran' if did else 'skipped'}" for step, did in ran.items()))
    if up_to_date(args.db, args.node):
        print("fill-in: discovery, the catalogue map and the label scores are up to date: no job started")
    else:
        args.background = True
        cmd_fill_in(args)
    return _first_admin(get_sessionmaker(args.db))


def cmd_map(args: argparse.Namespace) -> int:
    meta = build_catalogue_map(args.db, seed=args.seed, force=args.force, device=args.device, progress=_tqdm_progress())
    if args.out:
        _write_json(args.out, meta)
    return 0


def cmd_mapping(args: argparse.Namespace) -> int:
    try:
        if args.target == "google":
            return _mapping_google(args)
        if not args.platform:
            raise ValueError("--platform NAME is needed (the platform whose categories are mapped)")
        if args.action == "confirm":
            raise ValueError(
                "platform categories are confirmed on the Mapping page (confirm on the command line: --target google)"
            )
        if args.action == "export":
            out = args.out or f"{args.platform}-mapping.csv"
            n = export_mappings(args.db, args.platform, out)
            print(f"{n} categories of {args.platform!r} written to {out}")
            return 0
        rows = suggest_mappings(args.db, args.platform, store=not args.dry_run)
    except (CurationError, ValueError) as exc:
        print(f"mapping {args.action}: {exc}", file=sys.stderr)
        return 2
    return _print_suggestions(rows, "path", "master_path", "(no master equivalent)", out=args.out)


def _print_suggestions(rows: list[dict], source: str, target: str, nothing: str, *, out: str | None) -> int:
    """One line per suggestion (confidence, from -> to, ambiguous flag); with `out`, also the rows as JSON."""
    for r in rows:
        flag = "  (ambiguous)" if r["ambiguous"] else ""
        print(f"{r['confidence']:.2f}  {r[source]}  ->  {r[target] or nothing}{flag}")
    if out:
        _write_json(out, rows)
    return 0


def _mapping_google(args: argparse.Namespace) -> int:
    """The master taxonomy onto the imported Google Product Taxonomy (`taxonomy import-google` first)."""
    if args.action == "export":
        raise ValueError("the master taxonomy's Google categories are exported per product: `taxonomy export-feed`")
    if args.action == "confirm":
        return _confirm_google(args)
    rows = suggest_standard(args.db, store=not args.dry_run)
    return _print_suggestions(rows, "master_path", "standard_path", "(no Google equivalent)", out=args.out)


def _confirm_google(args: argparse.Namespace) -> int:
    """Confirm suggestions: one master node's (`--node`, optionally onto `--code`), or all above `--min-confidence`;
    each one audited, undoable action."""
    if not args.node and args.min_confidence is None:
        raise ValueError("mapping confirm --target google: give --node PATH [--code ID] or --min-confidence X")
    with transaction(get_sessionmaker(args.db)) as s:
        rows = standards.standard_table(s, standard="google")
        if args.node:
            node = node_by_path(s, args.node)
            if node is None:
                raise ValueError(f"no master category {args.node!r}")
            chosen = [r for r in rows if r["node_id"] == node.id]
        else:
            chosen = [r for r in rows if r["status"] == "suggested" and (r["confidence"] or 0) >= args.min_confidence]
        codes = {c.code: c.id for c in standards.categories_of(s, "google")} if args.code else {}
        if args.code and args.code not in codes:
            raise ValueError(f"no Google category with id {args.code}")
        for r in chosen:
            by = users.operator(args.actor)
            perform(s, "decide_standard", user=by, standard="google", node_id=r["node_id"], category_id=codes.get(args.code))
    print(f"{len(chosen)} master categories mapped onto Google categories")
    return 0


def cmd_taxonomy(args: argparse.Namespace) -> int:
    try:
        if args.action == "import-google":
            counts = import_google(args.db, args.path or config.google_taxonomy_file(), actor=args.actor)
            print(f"Google Product Taxonomy: {counts['new']} new, {counts['updated']} updated, {counts['unchanged']} unchanged")
            return 0
        out = args.out or "google-feed.csv"
        n = export_feed(args.db, out)
        print(f"{n} products written to {out}")
        return 0
    except (CurationError, google_taxonomy.TaxonomyFileError) as exc:
        print(f"taxonomy {args.action}: {exc}", file=sys.stderr)
        return 2


def _seed_and_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")


def _engine_options(parser: argparse.ArgumentParser) -> None:
    where = "where the work runs: here, or on Ray (the cluster of $RAY_ADDRESS, else a local instance)"
    parser.add_argument("--engine", choices=ENGINES, default="local", help=where)
    parser.add_argument("--ray-cpus", type=int, default=None, help="--engine ray, no $RAY_ADDRESS: the local instance's CPUs")


DB_HELP = "database URL (default: $DATABASE_URL or ./data/curator.db)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Taxonomy Curator pipeline steps.")
    parser.add_argument("--db", default=None, help=DB_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_catalogue_commands, _model_commands, _curation_commands, _mapping_commands, _admin_commands, _user_commands):
        add(sub)
    for command in sub.choices.values():
        # also after the sub-command; SUPPRESS: when absent there, the value given before it (or None) stays
        command.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    return parser


def _catalogue_commands(sub) -> None:
    ing = sub.add_parser("ingest", help="validate and upsert a catalogue (Parquet/CSV + images)")
    ing.add_argument("--catalog", default=str(config.catalog_dir()), help="file or folder (default: $CATALOG_DIR)")
    ing.add_argument("--platform", default=config.default_platform(), help="platform name (default: %(default)s)")
    ing.add_argument("--limit", type=int, default=None, help="only the first N rows")
    ing.add_argument(
        "--map",
        action="append",
        metavar="KEY=COLUMN",
        help="column mapping, e.g. --map id=sku --map path=category --map levels=l1,l2,l3",
    )
    ing.add_argument("--images-root", default=None, help="folder image paths are relative to")
    ing.add_argument(
        "--fetch-images",
        action="store_true",
        help="download photos given as http(s) URLs (10 MB, 10 s and image types only; resumable; kept under the data folder)",
    )
    ing.add_argument(
        "--fashion-mnist", action="store_true", help="ingest Fashion-MNIST (70,000 photos, 10 classes) as platform zalando"
    )
    ing.add_argument("--fashion-mnist-dir", default=str(fashion_mnist.DEFAULT_DIR), help="its IDX files (default: %(default)s)")
    ing.add_argument(
        "--seed-master",
        action="store_true",
        help="its categories are master categories (default: only the first platform ingested into an empty database)",
    )
    ing.add_argument("--actor", default=getpass.getuser(), help="name written to the audit log")
    ing.add_argument("--json", action="store_true", help="also print the full report as JSON")
    ing.set_defaults(func=cmd_ingest)

    sca = sub.add_parser("scale-catalogue", help="write N products recombined from Myntra and H&M (core.data.scale)")
    sca.add_argument("--size", type=int, required=True, help="how many products")
    sca.add_argument("--out", required=True, help="the Parquet file to write")
    sca.add_argument("--seed", type=int, default=0)
    sca.add_argument("--platform", default="scale", help="the platform column's value (default: %(default)s)")
    sca.set_defaults(func=cmd_scale_catalogue)

    emb = sub.add_parser("embed", help="embed product texts and photos (cached by content)")
    emb.add_argument("--text", default=None, help=f"text encoder (default: the recorded choice, else {DEFAULT_ENCODERS['text']})")
    emb.add_argument(
        "--image",
        default=None,
        help=f"image encoder, or 'none' (default: the recorded choice, else {DEFAULT_ENCODERS['image']})",
    )
    emb.add_argument("--descriptions", action="store_true", help="also embed title + description (slower)")
    emb.add_argument("--batch-size", type=int, default=64)
    emb.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    emb.add_argument("--input", default=None, metavar="FILE.parquet", help="embed the file's titles into the cache (no database)")
    emb.add_argument("--title-column", default="title", help="--input: the column of the titles (default: %(default)s)")
    _engine_options(emb)
    emb.set_defaults(func=cmd_embed)


def _model_commands(sub) -> None:
    ev = sub.add_parser("evaluate", help="compare baseline, single-modality, fusion and cascade models on one split")
    ev.add_argument("--out", default="benchmarks/results/classify.json")
    ev.add_argument("--cross-platform", action="store_true", help="train on one platform, test on another (both ways)")
    ev.add_argument("--platforms", default=None, help="--cross-platform: the two platforms, e.g. myntra,hm")
    ev.add_argument(
        "--group",
        action="append",
        metavar="PLATFORM=ATTRIBUTE",
        help="--cross-platform: split that platform by an attribute, e.g. hm=product_code",
    )
    ev.add_argument("--per-leaf", type=int, default=100, help="--cross-platform: at most N products per category (0: all)")
    _seed_and_device(ev)
    ev.set_defaults(func=cmd_evaluate)

    tr = sub.add_parser("train", help="train the two-stage classifier on the database's labels; register a version")
    tr.add_argument("--force", action="store_true", help="train even when labels and features are unchanged")
    tr.add_argument("--activate", action="store_true", help="make the new version active (default: only the first)")
    _seed_and_device(tr)
    tr.set_defaults(func=cmd_train)

    pr = sub.add_parser("predict", help="predict every product with the active model version (two-stage)")
    pr.add_argument("--force", action="store_true")
    pr.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    _engine_options(pr)
    pr.set_defaults(func=cmd_predict)


def _curation_commands(sub) -> None:
    dis = sub.add_parser("discover", help="propose subcategories under a node (SimCLR + UMAP + cascade clustering)")
    dis.add_argument("--node", default="Footwear > Shoes", help="taxonomy path (default: %(default)s)")
    dis.add_argument("--benchmark", action="store_true", help="hide the level below --node and score against it")
    dis.add_argument("--out", default="benchmarks/results/discovery.json")
    dis.add_argument("--if-missing", action="store_true", help="do nothing when the node already has proposals")
    dis.add_argument("--level", type=int, default=None, help="store the level of this many groups of the last run's tree")
    dis.add_argument("--max-products", type=int, default=None, help="--benchmark: a seeded sample of this many products")
    dis.add_argument("--no-bertopic", action="store_true", help="--benchmark: leave BERTopic out")
    dis.add_argument("--linkage", choices=["average", "ward"], default=None, help="--benchmark: the tree's linkage")
    dis.add_argument(
        "--represent", choices=["embedding", "ctfidf", "combined"], default=None, help="--benchmark: what the tree merges by"
    )
    dis.add_argument("--default-k", choices=["gap", "silhouette"], default=None, help="--benchmark: rule for the default level")
    dis.add_argument("--min-cluster-size", type=int, default=None, help="smallest proposal (default: 40, or 5%% of a small node)")
    dis.add_argument(
        "--max-unassigned",
        type=float,
        default=0.2,
        help="share of the node's products that unclear clusters may leave unassigned (default: %(default)s; -1: keep all)",
    )
    _seed_and_device(dis)
    dis.set_defaults(func=cmd_discover)

    rev = sub.add_parser("review", help="score label issues (out-of-fold) and fill the review queue")
    rev.add_argument("--benchmark", action="store_true", help="flip a share of labels in memory and score the rankings")
    rev.add_argument("--share", type=float, default=0.02, help="share of labels flipped by --benchmark")
    rev.add_argument("--folds", type=int, default=4)
    rev.add_argument("--out", default="benchmarks/results/review.json")
    rev.add_argument("--if-missing", action="store_true", help="do nothing when a review queue exists")
    _engine_options(rev)
    _seed_and_device(rev)
    rev.set_defaults(func=cmd_review)

    mp = sub.add_parser("map", help="2-D map and clusters of the whole catalogue for the Clusters page (cached)")
    mp.add_argument("--force", action="store_true", help="rebuild even when the catalogue is unchanged")
    mp.add_argument("--out", default=None, help="also write the timings as JSON")
    _seed_and_device(mp)
    mp.set_defaults(func=cmd_map)

    ret = sub.add_parser("retrain", help="train on the current taxonomy and labels, re-predict, activate (one at a time)")
    ret.add_argument("--background", action="store_true", help="start it as a background job and return")
    ret.add_argument(
        "--benchmark", action="store_true", help="accept the discovered split of --node, retrain, score the new leaves"
    )
    ret.add_argument("--node", default="Footwear > Shoes", help="node whose proposals --benchmark accepts")
    ret.add_argument("--out", default="benchmarks/results/retrain.json")
    ret.add_argument("--actor", default=getpass.getuser(), help="name written to the audit log")
    _seed_and_device(ret)
    ret.set_defaults(func=cmd_retrain)


def _mapping_commands(sub) -> None:
    mpg = sub.add_parser("mapping", help="map a platform's categories onto the master taxonomy (suggest, export)")
    mpg.add_argument("action", choices=["suggest", "export", "confirm"])
    mpg.add_argument("--platform", default=None, help="the platform whose categories are mapped (--target master)")
    mpg.add_argument(
        "--target",
        choices=["master", "google"],
        default="master",
        help="map a platform onto the master taxonomy (default), "
        "or the master taxonomy onto the imported Google Product Taxonomy",
    )
    mpg.add_argument("--out", default=None, help="suggest: also write them as JSON; export: the CSV file")
    mpg.add_argument("--dry-run", action="store_true", help="suggest: print, store nothing")
    mpg.add_argument("--node", default=None, help="confirm --target google: the master category (path)")
    mpg.add_argument("--code", default=None, help="confirm --target google: onto this Google id (default: its suggestion)")
    mpg.add_argument("--min-confidence", type=float, default=None, help="confirm --target google: every suggestion >= X")
    mpg.add_argument("--actor", default=getpass.getuser(), help="name written to the audit log")
    mpg.set_defaults(func=cmd_mapping)

    tax = sub.add_parser("taxonomy", help="standard taxonomies: import Google's, export a shopping feed")
    tax.add_argument("action", choices=["import-google", "export-feed"])
    tax.add_argument("path", nargs="?", default=None, help="import-google: the taxonomy-with-ids file (default: the shared copy)")
    tax.add_argument("--out", default=None, help="export-feed: the CSV file (default: google-feed.csv)")
    tax.add_argument("--actor", default=getpass.getuser(), help="name written to the audit log")
    tax.set_defaults(func=cmd_taxonomy)


def _admin_commands(sub) -> None:
    fill = sub.add_parser("fill-in", help="discover, map and score labels where missing (make serve: in the background)")
    fill.add_argument("--node", default=DEFAULT_NODE, help=f"the category to discover under (default {DEFAULT_NODE!r})")
    fill.add_argument("--background", action="store_true", help="start it as a background job and return at once")
    fill.add_argument("--actor", default=getpass.getuser(), help="name written to the audit log")
    fill.set_defaults(func=cmd_fill_in)

    start = sub.add_parser(
        "start",
        help="what `make run` does before serving: ingest, embed, train, predict (skipped when "
        "unchanged since the last start), the fill-in job, the first admin",
    )
    start.add_argument("--catalog", default=str(config.catalog_dir()), help="catalogue file or folder (default $CATALOG_DIR)")
    start.add_argument("--platform", default=config.default_platform())
    start.add_argument(
        "--node", default=DEFAULT_NODE, help=f"the category the fill-in discovers under (default {DEFAULT_NODE!r})"
    )
    start.add_argument("--actor", default=getpass.getuser(), help="name written to the audit log")
    start.set_defaults(func=cmd_start)

    job = sub.add_parser("job", help="run a queued background job (used by the app)")
    job.add_argument("action", choices=["run"])
    job.add_argument("job_id", type=int)
    job.set_defaults(func=cmd_job)

    dbp = sub.add_parser("db", help="database schema (Alembic migrations)")
    dbp.add_argument("action", choices=["upgrade", "current"])
    dbp.set_defaults(func=cmd_db)

    bkp = sub.add_parser("backup", help="back the whole database up to one file (SQLite backup API; pg_dump)")
    bkp.add_argument("--out", default=None, help="the backup file (default: <data folder>/backups/curator-<time>)")
    bkp.set_defaults(func=cmd_backup)
    rst = sub.add_parser("restore", help="replace the whole database by a backup (pg_restore for PostgreSQL)")
    rst.add_argument("file", help="a file written by `backup`")
    rst.add_argument("--yes", action="store_true", help="replace a database that holds tables (all of it)")
    rst.set_defaults(func=cmd_restore)


def _read_password(args: argparse.Namespace) -> str:
    """The new password: one line of standard input with --password-stdin, else typed twice at a hidden prompt (never
    a command-line argument, which would land in the shell's history and in `ps`)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Again: ") != password:
        raise CurationError("The two passwords differ; nothing was changed.")
    return password


def _print_users(rows: list[dict]) -> None:
    print(f"{'name':<24} {'role':<8} {'state':<9} last sign-in")
    for r in rows:
        state = "disabled" if r["disabled"] else "locked" if r["locked"] else "enabled"
        last = f"{r['last_login_at']:%Y-%m-%d %H:%M}" if r["last_login_at"] else "never"
        print(f"{r['name']:<24} {r['role']:<8} {state:<9} {last}")


def cmd_users(args: argparse.Namespace) -> int:
    """`users add|list|disable|enable|passwd|role`: the command line acts as the local operator (an admin)."""
    factory = get_sessionmaker(args.db)
    if args.action == "list":
        with factory() as s:
            _print_users(users.list_users(s))
        return 0
    if args.action == "first-admin":
        return _first_admin(factory)
    by = users.operator(args.actor)
    try:
        kwargs = {
            "add": lambda: {"role": args.role, "password": _read_password(args)},
            "passwd": lambda: {"password": _read_password(args)},
            "role": lambda: {"role": args.role},
        }.get(args.action, dict)()
        name = {"add": "add_user", "disable": "disable_user", "enable": "enable_user", "passwd": "set_password"}
        with transaction(factory) as s:
            perform(s, name.get(args.action, "change_role"), user=by, name=args.name, **kwargs)
    except CurationError as exc:
        print(f"users {args.action}: {exc}", file=sys.stderr)
        return 2
    print(f"users {args.action} {args.name}: done")
    return 0


def _first_admin(factory) -> int:
    """`users first-admin` (`make serve` runs it before the app): when no enabled admin exists, make one (from
    CURATOR_ADMIN_USER / CURATOR_ADMIN_PASSWORD, or with a random password printed here, once)."""
    with transaction(factory) as s:
        made = users.ensure_first_admin(s)
    if made is None:
        print("users first-admin: an enabled admin exists; nothing to do")
    elif made.password:
        print(users.first_sign_in(made))
    else:
        print(f"users first-admin: made admin {made.name!r} with the password of CURATOR_ADMIN_PASSWORD")
    return 0


def _user_commands(sub) -> None:
    usr = sub.add_parser("users", help="who may sign in to the app: add, list, disable, enable, passwd, role")
    actions = usr.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a user (the password is asked for, or read from stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=users.USER_ROLES)
    actions.add_parser("list", help="every user: role, enabled/disabled/locked, last sign-in")
    actions.add_parser("first-admin", help="make the first admin when none exists (a generated password is printed once)")
    for action, what in (("disable", "stop a user signing in"), ("enable", "let a disabled user sign in again")):
        actions.add_parser(action, help=what).add_argument("name")
    pwd = actions.add_parser("passwd", help="set a user's password (asked for, or read from stdin)")
    pwd.add_argument("name")
    role = actions.add_parser("role", help="give a user another role")
    role.add_argument("name")
    role.add_argument("role", choices=users.USER_ROLES)
    for command in (add, pwd):
        command.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    for command in actions.choices.values():
        command.add_argument("--actor", default=getpass.getuser(), help="name written to the audit log")
    usr.set_defaults(func=cmd_users)


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: the process's arguments), run the sub-command; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.db is None:
        args.db = config.database_url()
    if args.command not in ("db", "backup", "restore", "scale-catalogue"):  # a backup takes the schema as it is; a restore
        # replaces it; the scale catalogue is only a file
        upgrade(args.db)  # idempotent: every step runs on the current schema
    try:
        return args.func(args)
    except NotEnoughData as exc:  # too little to train on: what there is and what is needed, not a traceback
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
