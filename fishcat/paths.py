"""Where fishcat keeps things: shipped assets and checkpoints, and the user's own data folder."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"
DEFAULT_DATA = ASSETS_DIR / "default"
EXAMPLES_DIR = ASSETS_DIR / "examples"
CHECKPOINT_DIR = PROJECT_ROOT / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "default.pt"
DATA_DIR = PROJECT_ROOT / "data"  # uploads, extracted data sets, feature cache (not in git)
CACHE_DIR = DATA_DIR / "cache"
