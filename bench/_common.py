"""Shared helpers for the benchmark scripts in bench/ (not a benchmark itself).

- `DEFAULT_DATA`: ../shared/datasets/book-catfish relative to the repo root (read in place, never copied).
- `same_work_layout`: a temp folder of symlinks train/ -> book train/, val/ -> book val/, and
  test/ = a symlinked copy of val/, so fishcat trains on the same images as the book's loop
  instead of carving a test split out of train.
- `run_fishcat`: the in-process equivalent of `python -m fishcat train ...`, end to end
  (scan, decode, features, fit, test evaluation, checkpoint save), timed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "book-catfish"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def loadavg() -> str:
    """The 1-minute load average (this machine has 2 cores; other processes may be running)."""
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def add_data_arg(parser, help_text: str = "book-catfish root with train/ and val/ class folders") -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"{help_text} (default {DEFAULT_DATA})")


def check_data(data: Path) -> Path:
    data = Path(data)
    for split in ("train", "val"):
        if not (data / split).is_dir():
            raise SystemExit(f"error: {data}/{split} not found; pass --data pointing at book-catfish")
    return data


@contextmanager
def same_work_layout(data_root: Path) -> Iterator[Path]:
    """A temp root: train -> data/train, val -> data/val, test/<class>/<file> -> data/val files."""
    data_root = Path(data_root).resolve()
    with tempfile.TemporaryDirectory(prefix="fishcat-bench-") as tmp:
        root = Path(tmp) / "book-catfish-same-work"
        root.mkdir()
        os.symlink(data_root / "train", root / "train", target_is_directory=True)
        os.symlink(data_root / "val", root / "val", target_is_directory=True)
        for cls in sorted(p for p in (data_root / "val").iterdir() if p.is_dir()):
            (root / "test" / cls.name).mkdir(parents=True)
            for f in sorted(cls.iterdir()):
                if f.is_file():
                    os.symlink(f, root / "test" / cls.name / f.name)
        yield root


def warm_file_cache(*roots: Path) -> int:
    """Read every file once so that neither timed run pays for cold disk reads. Returns bytes read."""
    total = 0
    for root in roots:
        for dirpath, _, files in os.walk(root, followlinks=True):
            for name in files:
                with open(os.path.join(dirpath, name), "rb") as f:
                    total += len(f.read())
    return total


def run_fishcat(data_root: Path, model: str, *, epochs: int = 20, cache_dir: Path | None = None, verbose: bool = False) -> dict:
    """`python -m fishcat train --data DATA --model MODEL --epochs N` in process, timed end to end.

    Same defaults as the CLI (batch 64, lr 0.001, seed 0, device auto). cache_dir=None means no
    feature cache at all (as --no-cache); it only matters for frozen-backbone models anyway.
    """
    from fishcat.checkpoint import build_metadata, save_checkpoint
    from fishcat.cli import epoch_line
    from fishcat.data import scan_dataset
    from fishcat.train import EpochStats, TrainConfig, train

    with tempfile.TemporaryDirectory(prefix="fishcat-bench-ckpt-") as out_dir:
        t0 = time.perf_counter()
        config = TrainConfig(model=model, epochs=epochs)
        dataset = scan_dataset(data_root, seed=config.seed)
        result = None
        for event in train(config, dataset, cache_dir=cache_dir):
            if isinstance(event, EpochStats):
                if verbose:
                    print("  " + epoch_line(event), flush=True)
            else:
                result = event
        save_checkpoint(result.model, build_metadata(result), Path(out_dir) / "bench.pt")
        seconds = time.perf_counter() - t0
    last = result.history[-1]
    return {
        "seconds": seconds,
        "val_acc": last.val_acc,
        "test_acc": result.test.accuracy if result.test else None,
        "test_per_class": result.test.per_class if result.test else None,
        "counts": dataset.counts(),
        "notes": list(dataset.notes),
        "skipped": len(result.skipped),
        "epoch_seconds": sum(h.seconds for h in result.history),
    }


def fmt_counts(counts: dict) -> str:
    return "; ".join(f"{split}: " + ", ".join(f"{c} {n}" for c, n in per.items()) for split, per in counts.items())
