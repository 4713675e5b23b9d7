"""Shared fixtures: tiny, trivially separable image data sets generated in tmp_path.

"cat" images are reddish and "fish" images bluish, each with pixel noise, 40x30 pixels,
saved as a mix of PNG and JPEG so both decoders are exercised.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fishcat.paths import EXAMPLES_DIR

# Base colour per class; any class name not listed gets a colour derived from its index.
COLOURS: dict[str, tuple[int, int, int]] = {
    "cat": (200, 40, 40),
    "fish": (40, 60, 200),
    "red": (200, 40, 40),
    "blue": (40, 60, 200),
    "green": (40, 190, 50),
}
SPARE_COLOURS = [(220, 200, 30), (30, 200, 200), (180, 40, 180)]
IMAGE_SIZE = (40, 30)  # width, height

CAT_PHOTO = EXAMPLES_DIR / "scikit-image__chelsea.png"
FISH_PHOTO = EXAMPLES_DIR / "gcompris-qt-data__fish13.png"


def colour_image(colour: tuple[int, int, int], seed: int, size: tuple[int, int] = IMAGE_SIZE, mode: str = "RGB") -> Image.Image:
    """A solid-ish picture: `colour` plus uniform noise of +-30 per channel."""
    rng = np.random.default_rng(seed)
    w, h = size
    arr = np.asarray(colour, dtype=np.int16)[None, None, :] + rng.integers(-30, 31, size=(h, w, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if mode == "RGBA":
        img.putalpha(Image.fromarray(rng.integers(128, 256, size=(h, w)).astype(np.uint8)))
    return img


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def write_image(path: Path, colour: tuple[int, int, int], seed: int) -> Path:
    """Write a colour image; the suffix (.png / .jpg) picks the format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    path.write_bytes(encode(colour_image(colour, seed), fmt))
    return path


def write_truncated_jpeg(path: Path, seed: int = 999) -> Path:
    """A JPEG cut off after its header: decoding fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = encode(colour_image((120, 120, 120), seed, size=(64, 48)), "JPEG")
    path.write_bytes(data[: len(data) // 3])
    return path


def write_text_as_png(path: Path) -> Path:
    """A text file with an image name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not a picture\n" * 5)
    return path


def _colour_for(classes: tuple[str, ...], name: str) -> tuple[int, int, int]:
    if name in COLOURS:
        return COLOURS[name]
    return SPARE_COLOURS[classes.index(name) % len(SPARE_COLOURS)]


def make_class_folders(folder: Path, counts: dict[str, int], *, classes: tuple[str, ...] | None = None, seed: int = 0) -> Path:
    """folder/<class>/<class>_<i>.png|jpg; every second image a JPEG."""
    classes = classes or tuple(counts)
    for ci, name in enumerate(counts):
        colour = _colour_for(classes, name)
        for i in range(counts[name]):
            suffix = ".jpg" if i % 2 else ".png"
            write_image(folder / name / f"{name}_{i:03d}{suffix}", colour, seed=seed * 100_000 + ci * 1000 + i)
    return folder


def make_book_dataset(
    root: Path,
    classes: tuple[str, ...] = ("cat", "fish"),
    counts: tuple[int, int, int] = (12, 4, 4),
    *,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> Path:
    """root/{train,val,test}/<class>/ as in the book; `counts` is images per class per split."""
    per_split = dict(zip(("train", "val", "test"), counts))
    for si, split in enumerate(splits):
        make_class_folders(root / split, dict.fromkeys(classes, per_split[split]), classes=classes, seed=si + 1)
    return root


@pytest.fixture
def book_data(tmp_path: Path) -> Path:
    """A fresh book-layout data set (cat/fish, 12/4/4 per class) that a test may modify."""
    return make_book_dataset(tmp_path / "book")


@pytest.fixture(scope="session")
def shared_book_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same data set, generated once per session: tests must not modify it."""
    return make_book_dataset(tmp_path_factory.mktemp("shared") / "book")


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """A plain folder of class folders (no train/val/test), 20 images per class."""
    return make_class_folders(tmp_path / "plain", {"cat": 20, "fish": 20})


# Make the helpers reachable from test modules without importing conftest by name.
@pytest.fixture(scope="session")
def gen() -> "Gen":
    return Gen()


class Gen:
    colour_image = staticmethod(colour_image)
    encode = staticmethod(encode)
    write_image = staticmethod(write_image)
    write_truncated_jpeg = staticmethod(write_truncated_jpeg)
    write_text_as_png = staticmethod(write_text_as_png)
    make_class_folders = staticmethod(make_class_folders)
    make_book_dataset = staticmethod(make_book_dataset)
    colours = COLOURS
    cat_photo = CAT_PHOTO
    fish_photo = FISH_PHOTO

