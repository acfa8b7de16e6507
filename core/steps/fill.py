"""What `make run` fills in behind the served app: discovery on the default node, the catalogue map and the label
scores, one after the other in one background job (`core.jobs`, kind "fill"), each only when it is missing (the map
is cached by content anyway). The app is useful before they finish: the pages that need them say what is running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.embed.choice import chosen_encoders
from core.runs import RunRecord
from core.steps.discover import MIN_PRODUCTS, discover
from core.steps.maps import build_catalogue_map
from core.steps.review import run_review
from core.steps.start import db_stamp, record_path
from db import proposals as props
from db import review
from db.repo import node_by_path
from db.session import get_sessionmaker

DEFAULT_NODE = "Footwear > Shoes"
STEPS = ("discover", "map", "review")
Progress = Callable[[str, int, int], None]


def missing(db_url: str, node_path: str = DEFAULT_NODE) -> list[str]:
    """The steps of `STEPS` whose results are not there yet (the map is always listed: it checks its own cache)."""
    with get_sessionmaker(db_url)() as s:
        node = node_by_path(s, node_path)
        proposals = bool(node is not None and props.list_proposals(s, parent_node_id=node.id))
        queue = bool(review.counts(s))
    wanted = {"discover": node is not None and not proposals, "map": True, "review": not queue}
    return [step for step in STEPS if wanted[step]]


def fill_in(
    db_url: str, *, node_path: str = DEFAULT_NODE, progress: Progress | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the missing steps in order; `progress(step + " " + stage, done, total)` while each runs. Once all are
    done, what they were made from is recorded (`up_to_date`)."""
    done: dict[str, Any] = {}
    made_from = fill_inputs(db_url, node_path)
    for step in missing(db_url, node_path):
        inner = (lambda stage, n, total, step=step: progress(f"{step} {stage}", n, total)) if progress else None
        log(f"{step}: starting")
        if step == "discover":
            try:
                done[step] = discover(db_url, node_path=node_path, progress=inner, log=log)
            except ValueError as exc:  # too few products under the node: nothing to discover, not a failure
                log(f"discover: skipped ({exc}; needs {MIN_PRODUCTS})")
                done[step] = 0
        elif step == "map":
            done[step] = bool(build_catalogue_map(db_url, progress=inner, log=log))
        else:
            done[step] = run_review(db_url, progress=inner, log=log)
    record = RunRecord("fill", settings={"node": node_path}, outputs={"inputs": made_from, "done": done})
    record.write(record_path("fill", db_url))
    return done


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
