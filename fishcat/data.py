"""Data sets on disk: the book's train/val/test layout or a plain folder of class folders.

Classes come from folder names; missing val/test splits are carved reproducibly from train;
junk files are ignored; corrupt images are listed, skipped, or moved to a quarantine folder.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .images import IMAGE_EXTENSIONS, ImageError, is_hidden, load_image

SPLITS = ("train", "val", "test")
QUARANTINE_DIR = ".quarantine"  # hidden, so a quarantined file is never read again as data


class DatasetError(ValueError):
    """A data set folder that cannot be used, with a message naming the folder."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass
class Dataset:
    root: Path
    classes: list[str]
    splits: dict[str, list[Sample]]  # "train", "val", "test" (any may be empty but train)
    notes: list[str] = field(default_factory=list)  # what was inferred: carved splits, layout

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: n}}"""
        out = {}
        for split, samples in self.splits.items():
            per = dict.fromkeys(self.classes, 0)
            for s in samples:
                per[self.classes[s.label]] += 1
            out[split] = per
        return out

    def warnings(self) -> list[str]:
        """Things a person should know before training: imbalance, tiny classes."""
        out = []
        train = self.counts()["train"]
        biggest, smallest = max(train.values()), min(train.values())
        if smallest and biggest / smallest >= 3:
            out.append(
                f"class imbalance in train/: {', '.join(f'{c} {n}' for c, n in train.items())} "
                f"({biggest / smallest:.0f}:1); accuracy alone will flatter the model, look at per-class accuracy"
            )
        for c, n in train.items():
            if n < 5:
                out.append(f"class {c!r} has only {n} training image(s); expect a weak model")
        if not self.splits["val"]:
            out.append("no validation images: validation loss and accuracy will not be reported")
        return out

    def all_samples(self) -> list[Sample]:
        return [s for split in SPLITS for s in self.splits[split]]


def list_images(folder: Path) -> list[Path]:
    """Image files below `folder` (recursively), sorted, junk and hidden entries skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(Path(d)))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not is_hidden(Path(name)) and p.suffix.lower() in IMAGE_EXTENSIONS:
                found.append(p)
    return found


def _class_folders(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not is_hidden(Path(p.name))),
        key=lambda p: p.name,
    )


def _read_split(folder: Path) -> dict[str, list[Path]]:
    """{class name: image paths} for one folder of class folders, with messages naming the folder."""
    classes = _class_folders(folder)
    if not classes:
        loose = list_images(folder)
        hint = f" ({len(loose)} images lie directly in it)" if loose else ""
        raise DatasetError(
            f"{folder}: no class folders{hint}; put the images in one sub-folder per class, e.g. {folder}/cat and {folder}/fish"
        )
    out = {}
    for c in classes:
        images = list_images(c)
        if not images:
            raise DatasetError(f"{c}: class folder has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        out[c.name] = images
    if len(out) < 2:
        raise DatasetError(f"{folder}: found 1 class ({next(iter(out))}); need at least 2 class folders")
    return out


def _carve(samples: list[Sample], fraction: float, seed: int, n_classes: int) -> tuple[list[Sample], list[Sample]]:
    """Split off about `fraction` of each class, reproducibly; a class keeps at least one image."""
    rng = random.Random(seed)
    keep, held = [], []
    for label in range(n_classes):
        group = [s for s in samples if s.label == label]
        rng.shuffle(group)
        n = len(group)
        n_held = min(max(1, round(n * fraction)), n - 1) if n >= 3 else 0
        held += group[:n_held]
        keep += group[n_held:]
    return keep, held


def scan_dataset(root: str | Path, *, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15) -> Dataset:
    """Read a data set root. Layouts: root/{train,val,test}/<class>/ or root/<class>/."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: folder not found")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    present = {s: root / s for s in SPLITS if (root / s).is_dir()}
    notes: list[str] = []
    if present and "train" not in present:
        raise DatasetError(f"{root}: has {', '.join(present)}/ but no train/ folder")

    if present:
        per_split = {s: _read_split(p) for s, p in present.items()}
        classes = list(per_split["train"])
        for s, found in per_split.items():
            if list(found) != classes:
                raise DatasetError(
                    f"{root / s}: classes {sorted(found)} differ from train/ classes {classes}; every split needs the same class folders"
                )
    else:
        per_split = {"train": _read_split(root)}
        classes = list(per_split["train"])
        notes.append(f"{root}: no train/val/test folders; using its class folders as the whole data set")

    def samples(found: dict[str, list[Path]]) -> list[Sample]:
        return [Sample(p, classes.index(c)) for c, paths in found.items() for p in paths]

    splits = {s: samples(per_split[s]) if s in per_split else [] for s in SPLITS}
    # Carve test first, then val, each from what is left of train, with its own seed offset.
    if "test" not in per_split:
        splits["train"], splits["test"] = _carve(splits["train"], test_fraction, seed + 1, len(classes))
        notes.append(f"no test/ folder: held out {len(splits['test'])} images of train for testing (seed {seed})")
    if "val" not in per_split:
        frac = val_fraction / max(1e-9, 1 - (0 if "test" in per_split else test_fraction))
        splits["train"], splits["val"] = _carve(splits["train"], frac, seed, len(classes))
        notes.append(f"no val/ folder: held out {len(splits['val'])} images of train for validation (seed {seed})")
    return Dataset(root=root, classes=classes, splits=splits, notes=notes)


def scan_class_folder(folder: str | Path) -> Dataset:
    """An evaluation set: a data set root (its test split, else val) or a plain folder of class folders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    for split in ("test", "val"):
        if (folder / split).is_dir() and (folder / "train").is_dir():
            found = _read_split(folder / split)
            break
    else:
        found = _read_split(folder)
    classes = list(found)
    test = [Sample(p, i) for i, c in enumerate(classes) for p in found[c]]
    return Dataset(root=folder, classes=classes, splits={"train": [], "val": [], "test": test})


def find_corrupt(paths: Iterable[Path], on_progress: Callable[[int, int], None] | None = None) -> list[tuple[Path, str]]:
    """(path, reason) for every file that does not decode as an image."""
    paths = list(paths)
    bad = []
    for i, p in enumerate(paths):
        try:
            load_image(p, min_size=(8, 8))
        except ImageError as e:
            bad.append((p, str(e)))
        if on_progress:
            on_progress(i + 1, len(paths))
    return bad


def quarantine(root: str | Path, paths: Iterable[Path]) -> list[tuple[Path, Path]]:
    """Move files into root/.quarantine/<same relative path>; never deletes anything. Returns (from, to)."""
    root = Path(root).resolve()
    moved = []
    for p in paths:
        src = Path(p).resolve()
        try:
            rel = src.relative_to(root)
        except ValueError:
            raise DatasetError(f"{src}: not inside the data set {root}") from None
        dst = root / QUARANTINE_DIR / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while dst.exists():  # an earlier quarantine of a same-named file: keep both
            dst = dst.with_name(f"{dst.stem}.{n}{dst.suffix}")
            n += 1
        shutil.move(str(src), str(dst))
        moved.append((src, dst))
    return moved
