"""Every fishcat model on the book's cat/fish data vs the seed's loop, in one run.

Runs, one after the other in this process:
  1. the original loop (bench/original.py: book SimpleNet, ImageFolder, 20 epochs),
  2. fishcat `train` for each model in fishcat.models.MODELS with the CLI defaults
     (20 epochs, batch 64, lr 0.001, seed 0), end to end (scan, decode, features, fit,
     test evaluation, checkpoint save). efficientnet-lite0 runs twice: first with an EMPTY
     feature cache (a fresh temp folder, so feature extraction is included), then again with
     that now-warm cache.
fishcat sees a temp folder of symlinks (train/ -> book-catfish/train, val/ -> book-catfish/val,
test/ = a symlinked copy of val/), so every run trains on the same 788 images and validates
on the same 102; "test accuracy" is therefore the same images as val. All files are read
once before timing. The machine is shared: use the ratios from one run; the 1-minute load
average at the start and end of each row is printed (2 cores: a load well above 2 slows torch's
multi-threaded compute, e.g. feature extraction, far more than the book loop's JPEG decoding).

Run from the repo root:
    .venv/bin/python bench/book_models.py [--data ../shared/datasets/book-catfish] [--verbose]
Targets: efficientnet-lite0 val accuracy >= 0.97, and its cold-cache run <= 0.5x the
original loop's wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # repo root, for `python bench/book_models.py`

import torch  # noqa: E402

from bench._common import add_data_arg, check_data, fmt_counts, loadavg, run_fishcat, same_work_layout, warm_file_cache  # noqa: E402
from bench.original import run_original  # noqa: E402
from fishcat.models import MODELS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arg(parser)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--verbose", action="store_true", help="print every epoch line")
    args = parser.parse_args()
    data_root = check_data(args.data)

    rows = []  # (label, val_acc, test_acc, seconds, load at start/end)
    with same_work_layout(data_root) as layout, tempfile.TemporaryDirectory(prefix="fishcat-bench-cache-") as cache_dir:
        warm_file_cache(data_root)
        # The first torch.optim optimizer of a process imports torch._dynamo (~2 s): pay it before timing anything.
        torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
        print(f"data: {data_root}; fishcat sees {layout} (test/ = symlinked copy of val/)", flush=True)

        print("\n--- original loop (book SimpleNet, ImageFolder) ---", flush=True)
        load0 = loadavg()
        orig = run_original(data_root, args.epochs, verbose=args.verbose)
        print(f"  {orig['seconds']:.1f}s, val acc {orig['val_acc']:.4f}", flush=True)
        rows.append(("original loop (book)", orig["val_acc"], None, orig["seconds"], f"{load0}/{loadavg()}"))

        for name, info in MODELS.items():
            runs = [("cold cache", Path(cache_dir)), ("warm cache", Path(cache_dir))] if info.frozen_backbone else [("", None)]
            for label, cache in runs:
                title = f"fishcat {name}" + (f" ({label})" if label else "")
                print(f"\n--- {title} ---", flush=True)
                if label == "cold cache":
                    assert not any(Path(cache_dir).iterdir()), "cache folder should be empty for the cold run"
                load0 = loadavg()
                r = run_fishcat(layout, name, epochs=args.epochs, cache_dir=cache, verbose=args.verbose)
                print(f"  data: {fmt_counts(r['counts'])}; skipped {r['skipped']}")
                print(f"  {r['seconds']:.1f}s (epochs {r['epoch_seconds']:.1f}s), val acc {r['val_acc']:.4f}, "
                      f"test acc {r['test_acc']:.4f}, test per class {', '.join(f'{c} {a:.4f}' for c, a in r['test_per_class'].items())}",
                      flush=True)
                rows.append((title, r["val_acc"], r["test_acc"], r["seconds"], f"{load0}/{loadavg()}"))

    base = rows[0][3]
    print(f"\n=== {data_root.name}: {orig['n_train']} train / {orig['n_val']} val (test = val), {args.epochs} epochs ===")
    print(f"{'model':<40} | {'val acc (last epoch)':>20} | {'test acc (=val)':>15} | {'wall s':>7} | {'x original time':>15} | load start/end")
    for label, val, test, sec, load in rows:
        t = f"{test:15.4f}" if test is not None else f"{'-':>15}"
        print(f"{label:<40} | {val:20.4f} | {t} | {sec:7.1f} | {sec / base:15.3f} | {load}")

    eff = {label: (val, sec) for label, val, _, sec, _ in rows if label.startswith("fishcat efficientnet-lite0")}
    cold_val, cold_sec = eff["fishcat efficientnet-lite0 (cold cache)"]
    warm_val, warm_sec = eff["fishcat efficientnet-lite0 (warm cache)"]
    print("\ntargets:")
    print(f"  efficientnet-lite0 val accuracy >= 0.97: cold {cold_val:.4f}, warm {warm_val:.4f} -> "
          f"{'MET' if min(cold_val, warm_val) >= 0.97 else 'MISSED'}")
    print(f"  efficientnet-lite0 cold-cache time <= 0.5x original: {cold_sec:.1f}s / {base:.1f}s = {cold_sec / base:.3f}x -> "
          f"{'MET' if cold_sec / base <= 0.5 else 'MISSED'}")
    print(f"  (warm cache: {warm_sec:.1f}s = {warm_sec / base:.3f}x original)")


if __name__ == "__main__":
    main()
