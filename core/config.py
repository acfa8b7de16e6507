"""Settings read from the environment, with defaults that work from a fresh clone.

Every setting is a function so tests can change the environment between calls.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Folder for generated artefacts (database, embeddings, indexes, models): `$DATA_DIR` or ./data."""
    path = Path(os.environ.get("DATA_DIR", REPO_ROOT / "data"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def catalog_dir() -> Path:
    """The default catalogue: `$CATALOG_DIR`, else ../shared/data/fashion-catalog beside the repo."""
    default = REPO_ROOT.parent / "shared" / "data" / "fashion-catalog"
    return Path(os.environ.get("CATALOG_DIR", default))


def hm_catalog_dir() -> Path:
    """The H&M articles (a second platform, text only): `$HM_CATALOG_DIR`, else ../shared/data/hm-catalog."""
    return Path(os.environ.get("HM_CATALOG_DIR", REPO_ROOT.parent / "shared" / "data" / "hm-catalog"))


def google_taxonomy_file() -> Path:
    """The Google Product Taxonomy file: `$GOOGLE_TAXONOMY_FILE`, else the copy under ../shared/data."""
    default = REPO_ROOT.parent / "shared" / "data" / "google-product-taxonomy" / "taxonomy-with-ids.en-US.txt"
    return Path(os.environ.get("GOOGLE_TAXONOMY_FILE", default))


def database_url() -> str:
    """`$DATABASE_URL`, else a SQLite file under the data folder."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{data_dir() / 'curator.db'}"


def default_platform() -> str:
    """Platform name given to the default catalogue."""
    return os.environ.get("CATALOG_PLATFORM", "myntra")
