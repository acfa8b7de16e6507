"""One record of a pipeline run (discover, map, review): its settings, inputs and stage timings.

Each step writes its `RunRecord` beside its output (`<name>.run.json`) and into the meta it stores, so the
pages and the benchmarks read the same description of how a result was made.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunRecord:
    """What a run did. `inputs` names what it read (products, encoder ids, content keys); `timings` seconds per stage."""

    step: str
    settings: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))
    _clock: float = field(default_factory=time.perf_counter, repr=False)

    def stage(self, name: str) -> float:
        """Close the stage `name` (seconds since the previous stage or the start); returns its duration."""
        now = time.perf_counter()
        self.timings[name] = round(now - self._clock, 2)
        self._clock = now
        return self.timings[name]

    @property
    def seconds(self) -> float:
        return round(sum(self.timings.values()), 2)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("_clock")
        out["seconds"] = self.seconds
        return out

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=True, default=str))
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: Path) -> RunRecord | None:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return None
        data.pop("seconds", None)
        return cls(**data)
