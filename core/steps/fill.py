"""What `make run` fills in behind the served app: discovery on the default node, the catalogue map and the label
scores, one after the other in one background job (`core.jobs`, kind "fill"), each only when it is missing (the map
is cached by content anyway). The app is useful before they finish: the pages that need them say what is running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.steps.discover import MIN_PRODUCTS, discover
from core.steps.maps import build_catalogue_map
from core.steps.review import run_review
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
    """Run the missing steps in order; `progress(step + " " + stage, done, total)` while each runs."""
    done: dict[str, Any] = {}
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
    return done
