"""Opening catalogue photos safely: inside their platform's image folder, and never a decompression bomb.

`resolve_image` turns a catalogue's image value into a file under the image folder (symlinks followed) or refuses
it (a NUL, a name the file system cannot hold, a path that leaves the folder by `..`, an absolute path or a
symlink); `open_image` opens a file with PIL and refuses one larger than `pixel_limit()` pixels before it is
decoded (PIL's own bomb check raises only past twice `Image.MAX_IMAGE_PIXELS` and merely warns below that).
Ingest (`core.data.ingest.check_image`) and embedding (`core.embed.encoders.load_image`) both open photos here,
so a photo replaced after ingest by a non-image or a bomb is "unreadable" there too, never a traceback.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

MAX_PIXELS = 64_000_000  # 8000 x 8000: far above any product photo, far below what would exhaust memory when decoded
_FAILURES = (OSError, ValueError, TypeError, SyntaxError, EOFError, RuntimeError)


class UnreadableImage(Exception):
    """The photo cannot be used; the message says why (shown to the user)."""


def pixel_limit() -> int:
    """The most pixels a photo may have: `MAX_PIXELS`, or PIL's `Image.MAX_IMAGE_PIXELS` when that is lower."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    return MAX_PIXELS if not limit else min(MAX_PIXELS, int(limit))


def resolve_image(root: Path, image: str) -> tuple[Path | None, str | None]:
    """The file `image` names under `root` (resolved, symlinks followed), or (None, why it is refused).

    A path leaving `root` is refused whatever leads it out: `..`, an absolute path elsewhere, a symlink.
    """
    if "\x00" in image:
        return None, "NUL character in the photo's path"
    try:
        base = Path(root).resolve()
        file = (base / image).resolve()
    except _FAILURES as exc:
        return None, f"the photo's path cannot be resolved ({type(exc).__name__}: {exc})"
    if not file.is_relative_to(base):
        return None, "the photo's path leaves the platform's image folder (refused)"
    return file, None


@contextmanager
def open_image(path: str | Path):
    """A PIL image of `path`, opened lazily (header read, pixels not yet decoded); raises `UnreadableImage` (with
    why) for a file that is not an image, a decompression bomb or one over `pixel_limit()` pixels."""
    from PIL import Image

    try:
        im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage(f"decompression bomb refused ({exc})") from exc
    except _FAILURES as exc:
        raise UnreadableImage(f"{type(exc).__name__}: {exc}") from exc
    try:
        pixels, limit = im.width * im.height, pixel_limit()
        if pixels > limit:
            raise UnreadableImage(
                f"too large: {im.width} x {im.height} pixels (the limit is {limit:,}), refused as a possible bomb"
            )
        if im.width < 1 or im.height < 1:
            raise UnreadableImage("empty image")
        yield im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage(f"decompression bomb refused ({exc})") from exc
    except _FAILURES as exc:
        raise UnreadableImage(f"{type(exc).__name__}: {exc}") from exc
    finally:
        im.close()
