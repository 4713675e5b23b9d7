"""End-to-end training time: the seed's loop (bench/original.py) vs fishcat's SimpleNet, in one run.

Same work on both sides: fishcat carves a test split out of train/ when there is no test/
folder, so it is pointed at a temp folder of symlinks: train/ -> book-catfish/train,
val/ -> book-catfish/val, test/ = a symlinked copy of val/. Both then train on the same 788
images and validate on the same 102 (fishcat also evaluates its "test" split = val once more,
which it pays for). Nothing is copied into the project.

Timed end to end:
  - original: ImageFolder scan + 20 epochs of the book's loop (decode every image every epoch).
  - fishcat (in process): what `python -m fishcat train --model simplenet --epochs 20` runs:
    scan_dataset + fishcat.train.train (decode once, 20 epochs, test evaluation) + checkpoint
    save. No feature cache is involved (cache_dir=None, and simplenet never uses one).
  - fishcat CLI (subprocess, also reported): the real command, including interpreter start and
    imports; on simplenet the CLI's cache folder is not used.
All files are read once before timing so neither side pays for cold disk reads. The machine
is shared: compare the ratio from one run, not absolute seconds across runs. The 1-minute load
average at the start and end of each repeat is printed: on 2 cores a load well above 2 slows
torch's multi-threaded compute more than single-threaded JPEG decoding, which skews the ratio.

Run from the repo root:
    .venv/bin/python bench/train_speed.py [--data ../shared/datasets/book-catfish] [--repeat N] [--no-cli]
Target: fishcat >= 10x faster than the original loop end to end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # repo root, for `python bench/train_speed.py`

import torch  # noqa: E402

from bench._common import ROOT, add_data_arg, check_data, loadavg, fmt_counts, run_fishcat, same_work_layout, warm_file_cache  # noqa: E402
from bench.original import run_original  # noqa: E402


def run_cli(layout: Path, epochs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="fishcat-bench-cli-") as out:
        cmd = [sys.executable, "-m", "fishcat", "train", "--data", str(layout), "--model", "simplenet",
               "--epochs", str(epochs), "--out", str(Path(out) / "cli.pt")]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"fishcat CLI failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    lines = proc.stdout.splitlines()
    last_epoch = [ln for ln in lines if ln.startswith("Epoch:")][-1]
    val_acc = float(last_epoch.split("accuracy = ")[1].split()[0])
    return {"seconds": seconds, "val_acc": val_acc, "cmd": " ".join(cmd[1:]), "stdout": proc.stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arg(parser)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1, help="repeat the pair N times; ratios are per pair")
    parser.add_argument("--no-cli", action="store_true", help="skip the subprocess CLI timing")
    parser.add_argument("--quiet", action="store_true", help="do not print per-epoch lines")
    args = parser.parse_args()
    data_root = check_data(args.data)

    with same_work_layout(data_root) as layout:
        n_bytes = warm_file_cache(data_root)
        print(f"data: {data_root} ({n_bytes / 1e6:.0f} MB read once to warm the file cache)")
        # The first torch.optim optimizer of a process imports torch._dynamo (~2 s); pay it before timing
        # either loop, so whichever runs first is not charged for it.
        torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
        print(f"fishcat sees: {layout} (symlinks: train/, val/, test/ = copy of val/)")
        rows = []
        for rep in range(args.repeat):
            print(f"\n--- repeat {rep + 1}/{args.repeat}: original loop ---", flush=True)
            load0 = loadavg()
            orig = run_original(data_root, args.epochs, verbose=not args.quiet)
            print(f"--- repeat {rep + 1}/{args.repeat}: fishcat train --model simplenet (in process) ---", flush=True)
            fc = run_fishcat(layout, "simplenet", epochs=args.epochs, cache_dir=None, verbose=not args.quiet)
            if rep == 0:
                print(f"  fishcat data: {fmt_counts(fc['counts'])}; skipped {fc['skipped']}")
            cli = None
            if not args.no_cli:
                print(f"--- repeat {rep + 1}/{args.repeat}: fishcat CLI (subprocess) ---", flush=True)
                cli = run_cli(layout, args.epochs)
                if rep == 0:
                    print(f"  $ {cli['cmd']}")
            rows.append((orig, fc, cli, f"{load0}/{loadavg()}"))

    o0 = rows[0][0]
    print(f"\n=== end-to-end training time, SimpleNet, {args.epochs} epochs, {o0['n_train']} train / {o0['n_val']} val ===")
    print(f"{'repeat':>6} | {'original s':>10} | {'fishcat s':>9} | {'speed-up':>8} | {'CLI s':>7} | {'CLI speed-up':>12} | "
          f"{'orig val acc':>12} | {'fishcat val acc':>15} | {'fishcat test acc':>16} | {'CLI val acc':>11} | load start/end")
    for i, (o, f, c, load) in enumerate(rows):
        cs = f"{c['seconds']:7.2f}" if c else f"{'-':>7}"
        cr = f"{o['seconds'] / c['seconds']:11.1f}x" if c else f"{'-':>12}"
        ca = f"{c['val_acc']:11.2f}" if c else f"{'-':>11}"
        print(f"{i + 1:>6} | {o['seconds']:10.2f} | {f['seconds']:9.2f} | {o['seconds'] / f['seconds']:7.1f}x | {cs} | {cr} | "
              f"{o['val_acc']:12.4f} | {f['val_acc']:15.4f} | {f['test_acc']:16.4f} | {ca} | {load}")
    ratios = [o["seconds"] / f["seconds"] for o, f, _, _ in rows]
    ratio = statistics.median(ratios)
    print(f"\nspeed-up (median of {len(rows)}): fishcat in process is {ratio:.1f}x faster than the original loop "
          f"-> target >= 10x: {'MET' if ratio >= 10 else 'MISSED'}")
    if not args.no_cli:
        cli_ratio = statistics.median(o["seconds"] / c["seconds"] for o, _, c, _ in rows)
        print(f"speed-up (median) via the CLI subprocess, incl. interpreter start and imports: {cli_ratio:.1f}x "
              f"-> target >= 10x: {'MET' if cli_ratio >= 10 else 'MISSED'}")


if __name__ == "__main__":
    main()
