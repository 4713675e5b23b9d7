"""How well the shipped default model (trained on fishcat's own emoji/clip-art default data)
recognises the book's real cat and fish photos.

Evaluates a checkpoint (default checkpoints/default.pt) on ALL of book-catfish: train/ and
val/ merged into one folder of class folders (a temp folder of symlinks, nothing copied),
through fishcat's own `evaluate` CLI path (fishcat.cli.main(["evaluate", ...])), and prints
accuracy, per-class accuracy and the confusion matrix.

If the checkpoint does not exist yet, one is trained first to /tmp/default.pt with
    python -m fishcat train --data assets/default --out /tmp/default.pt --no-cache
(--no-cache only keeps the feature cache out of the project's data/ folder; it does not change
the model.)

Run from the repo root:
    .venv/bin/python bench/default_on_book.py [--data ../shared/datasets/book-catfish] [--checkpoint PATH]
Target: accuracy >= 0.95.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # repo root, for `python bench/default_on_book.py`

from bench._common import ROOT, add_data_arg, check_data  # noqa: E402
from fishcat import cli  # noqa: E402
from fishcat.checkpoint import read_checkpoint_file  # noqa: E402
from fishcat.paths import DEFAULT_CHECKPOINT  # noqa: E402

FALLBACK = Path("/tmp/default.pt")


def merged_class_folders(data_root: Path, tmp: Path) -> Path:
    """tmp/all/<class>/<split>-<file> symlinks for every image of every split."""
    out = tmp / "book-catfish-all"
    for split in sorted(p for p in data_root.iterdir() if p.is_dir()):
        for cls in sorted(p for p in split.iterdir() if p.is_dir()):
            (out / cls.name).mkdir(parents=True, exist_ok=True)
            for f in sorted(cls.iterdir()):
                if f.is_file():
                    os.symlink(f.resolve(), out / cls.name / f"{split.name}-{f.name}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arg(parser)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help=f"default {DEFAULT_CHECKPOINT}")
    args = parser.parse_args()
    data_root = check_data(args.data).resolve()

    ckpt = args.checkpoint
    if not ckpt.exists():
        if ckpt != DEFAULT_CHECKPOINT:
            raise SystemExit(f"error: {ckpt} not found")
        ckpt = FALLBACK
        cmd = [sys.executable, "-m", "fishcat", "train", "--data", "assets/default", "--out", str(ckpt), "--no-cache"]
        print(f"{DEFAULT_CHECKPOINT} does not exist yet; training one:\n  $ {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True)
        print(f"  ({time.perf_counter() - t0:.1f}s)\n", flush=True)

    meta = read_checkpoint_file(ckpt)
    print(f"checkpoint: {ckpt}  model {meta['model']}  classes {meta['classes']}  trained on {meta['data']['root']}  "
          f"created {meta.get('created')}  temperature {meta.get('temperature', 1.0)}")
    test = (meta.get("metrics") or {}).get("test") or {}
    if test:
        print(f"  its own test accuracy: {test.get('accuracy'):.4f} on {test.get('n')} images")

    with tempfile.TemporaryDirectory(prefix="fishcat-bench-all-") as tmp:
        folder = merged_class_folders(data_root, Path(tmp))
        counts = {c.name: len(list(c.iterdir())) for c in sorted(folder.iterdir())}
        print(f"evaluating on all of {data_root}: " + ", ".join(f"{c} {n}" for c, n in counts.items()), flush=True)
        buf = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            rc = cli.main(["evaluate", "--data", str(folder), "--checkpoint", str(ckpt), "--json"])
        seconds = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"fishcat evaluate failed with status {rc}: {buf.getvalue()}")
    r = json.loads(buf.getvalue().strip().splitlines()[-1])

    classes = list(r["per_class"])
    print(f"\naccuracy = {r['accuracy']:.4f} on {r['n']} images ({r['skipped']} skipped), {seconds:.1f}s")
    for c, a in r["per_class"].items():
        print(f"  {c}: {a:.4f}")
    print("confusion (rows: true, columns: predicted):")
    print(f"  {'':>8} " + " ".join(f"{c:>8}" for c in classes))
    for c, row in zip(classes, r["confusion"]):
        print(f"  {c:>8} " + " ".join(f"{v:>8}" for v in row))
    print(f"\ntarget accuracy >= 0.95: {'MET' if r['accuracy'] >= 0.95 else 'MISSED'} ({r['accuracy']:.4f})")


if __name__ == "__main__":
    main()
