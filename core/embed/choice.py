"""The encoders a user chose (`python -m core embed --text X --image Y`), recorded for every later step.

`embed` records its choice in `<data dir>/encoders.json`; train, review, discover and map read it back with
`chosen_encoders()`, so a choice made once holds end to end. A trained model version keeps the encoder ids it was
trained on in its manifest, and predict embeds with those (see `core.classify.bundle`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from core.config import data_dir
from core.embed.encoders import DEFAULT_ENCODERS, ENCODERS

CHOICE_FILE = "encoders.json"


@dataclass(frozen=True)
class EncoderChoice:
    """Registry names (`core.embed.encoders.ENCODERS`) of the text and image encoder; `image=None`: no photos."""

    text: str = DEFAULT_ENCODERS["text"]
    image: str | None = DEFAULT_ENCODERS["image"]

    def __post_init__(self) -> None:
        for name in (self.text, self.image):
            if name is not None and name not in ENCODERS:
                raise ValueError(f"unknown encoder {name!r}; choose from {sorted(ENCODERS)}")

    def kwargs(self) -> dict[str, str | None]:
        """Keyword arguments of `embed_catalogue` / `encoder_ids`."""
        return {"text_encoder": self.text, "image_encoder": self.image}

    def describe(self) -> str:
        return f"text {self.text}, image {self.image or 'none (photos not used)'}"


def choice_file() -> Path:
    return data_dir() / CHOICE_FILE


def chosen_encoders() -> EncoderChoice:
    """The recorded choice, or the bundled defaults when `embed` has not recorded one."""
    try:
        data = json.loads(choice_file().read_text())
    except (OSError, ValueError):
        return EncoderChoice()
    return EncoderChoice(text=data.get("text", DEFAULT_ENCODERS["text"]), image=data.get("image"))


def record_encoders(choice: EncoderChoice) -> Path:
    """Write `choice` for the later steps; returns the file."""
    path = choice_file()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(choice), indent=2))
    tmp.replace(path)
    return path
