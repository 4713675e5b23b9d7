"""The command line: train, predict, evaluate and clean, printing what the engine returns.

Bad input ends with a one-line error and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .archive import ArchiveError
from .checkpoint import CheckpointError, build_metadata, load_checkpoint, new_checkpoint_path, save_checkpoint
from .data import DatasetError, find_corrupt, list_images, quarantine, scan_class_folder, scan_dataset
from .images import ImageError
from .models import DEFAULT_MODEL, MODELS, trainable_part
from .paths import CACHE_DIR, CHECKPOINT_DIR, DEFAULT_CHECKPOINT
from .predict import Predictor
from .train import EpochStats, TrainConfig, TrainingError, TrainResult, evaluate, prepare_split, train

USER_ERRORS = (DatasetError, ImageError, CheckpointError, TrainingError, ArchiveError, ValueError, OSError)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def epoch_line(s: EpochStats) -> str:
    """The book's line, plus training accuracy and time."""
    return (
        f"Epoch: {s.epoch}, Training Loss: {_fmt(s.train_loss)}, Validation Loss: {_fmt(s.val_loss)}, "
        f"accuracy = {_fmt(s.val_acc)} (train accuracy {s.train_acc:.2f}, {s.seconds:.2f}s)"
    )


def cmd_train(args: argparse.Namespace) -> int:
    config = TrainConfig(model=args.model, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed, device=args.device)
    dataset = scan_dataset(args.data, seed=args.seed)
    counts = dataset.counts()
    print(f"data: {dataset.root}  classes: {', '.join(dataset.classes)}")
    for split, per in counts.items():
        print(f"  {split}: " + ", ".join(f"{c} {n}" for c, n in per.items()))
    for note in dataset.notes + dataset.warnings():
        print(f"  note: {note}")
    print(f"model: {config.model}  epochs: {config.epochs}  lr: {config.lr}  batch size: {config.batch_size}  seed: {config.seed}")
    result: TrainResult | None = None
    for event in train(config, dataset, cache_dir=None if args.no_cache else CACHE_DIR):
        if isinstance(event, EpochStats):
            print(epoch_line(event), flush=True)
        else:
            result = event
    assert result is not None
    if result.skipped:
        print(f"skipped {len(result.skipped)} unreadable image(s):")
        for p, why in result.skipped:
            print(f"  {why}")
    if result.test:
        t = result.test
        print(f"test accuracy = {t.accuracy:.4f} on {t.n} images; per class: " + ", ".join(f"{c} {a:.4f}" for c, a in t.per_class.items()))
        print("confusion (rows: true, columns: predicted): " + json.dumps(t.confusion))
    out = Path(args.out) if args.out else new_checkpoint_path(CHECKPOINT_DIR, config.model)
    save_checkpoint(result.model, build_metadata(result), out)
    print(f"saved {out} ({result.seconds:.1f}s in all)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    predictor = Predictor.from_path(args.checkpoint)
    failures = 0
    for path in args.images:
        try:
            p = predictor.predict(path, trim=args.trim)
        except ImageError as e:
            failures += 1
            print(f"error: {e}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps({"file": str(path), "label": p.label, "probabilities": p.probabilities, "box": list(p.box)}))
        else:
            probs = ", ".join(f"{c} {v:.3f}" for c, v in p.probabilities.items())
            unsure = "" if p.sure else "  (not sure)"
            trimmed = f"  [trimmed to {p.box}]" if p.trimmed else ""
            print(f"{path}: {p.label}{unsure}  ({probs}){trimmed}")
    return 2 if failures else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    ckpt = load_checkpoint(args.checkpoint)
    dataset = scan_class_folder(args.data)
    if sorted(dataset.classes) != sorted(ckpt.classes):
        raise DatasetError(f"{args.data}: classes {dataset.classes} do not match the checkpoint's {ckpt.classes}")
    # Relabel to the checkpoint's class order, then run the same prepare/evaluate as training.
    samples = [type(s)(s.path, ckpt.classes.index(dataset.classes[s.label])) for s in dataset.splits["test"]]
    data, skipped = prepare_split(samples, ckpt.model_name, ckpt.model, ckpt.device, None, lambda *a: None)
    net = trainable_part(ckpt.model_name, ckpt.model)  # prepare_split gave features for a frozen backbone
    result = evaluate(net, data, spec=ckpt.input_spec, classes=ckpt.classes, temperature=ckpt.temperature)
    for p, why in skipped:
        print(f"skipped: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps({**result.to_dict(), "skipped": len(skipped)}))
    else:
        print(f"accuracy = {result.accuracy:.4f} on {result.n} images ({len(skipped)} skipped)")
        for c, a in result.per_class.items():
            print(f"  {c}: {a:.4f}")
        print("confusion (rows: true, columns: predicted): " + json.dumps(result.confusion))
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: folder not found")
    bad = find_corrupt(list_images(root))
    if not bad:
        print(f"{root}: no corrupt images")
        return 0
    if args.dry_run:
        for p, why in bad:
            print(f"corrupt: {why}")
        return 0
    for (src, dst), (_, why) in zip(quarantine(root, [p for p, _ in bad]), bad):
        print(f"moved {src} -> {dst}  ({why})")
    print(f"{len(bad)} file(s) moved to {root / '.quarantine'}; nothing was deleted")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fishcat", description="Train an image classifier on folders of pictures and use it.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on a data set folder", description="Train on DIR: train/ val/ test/ with one folder per class (or just class folders).")
    t.add_argument("--data", required=True, help="data set root")
    t.add_argument("--model", default=DEFAULT_MODEL, choices=list(MODELS), help=f"network to train (default {DEFAULT_MODEL})")
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--lr", type=float, default=0.001)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    t.add_argument("--out", help="checkpoint path (default: checkpoints/<time>-<model>.pt)")
    t.add_argument("--no-cache", action="store_true", help="do not read or write the backbone feature cache")
    t.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="classify image files", description="Print the label and class probabilities of each image.")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--trim", action="store_true", help="trim screenshot borders, bars and window chrome first")
    p.set_defaults(func=cmd_predict)

    e = sub.add_parser("evaluate", help="accuracy of a checkpoint on labelled images", description="Evaluate on a data set root (its test split) or a folder of class folders.")
    e.add_argument("--data", required=True)
    e.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("clean", help="move corrupt images to DIR/.quarantine", description="Find images that do not decode and move them (never delete) to DIR/.quarantine.")
    c.add_argument("dir")
    c.add_argument("--dry-run", action="store_true", help="only list them")
    c.set_defaults(func=cmd_clean)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
