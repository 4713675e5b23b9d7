"""Does the default checkpoint classify screenshots of photos as well as the photos themselves?

Reads screenshot folders made by bench/make_screenshots.py (each has boxes.json naming the source
photo of every screenshot), and predicts each screenshot and its source photo with the same call the
app's `predict` API makes (`Predictor.predict(path, trim=True)`), plus the screenshot untrimmed.

    .venv/bin/python bench/make_screenshots.py ../shared/datasets/book-catfish/val /tmp/screens/val
    .venv/bin/python bench/screenshot_accuracy.py /tmp/screens/val [--checkpoint checkpoints/default.pt]

Target: screenshot accuracy (trim on) >= 0.95 and close to the photos' accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fishcat.predict import Predictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders written by bench/make_screenshots.py")
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "default.pt"))
    args = parser.parse_args()
    predictor = Predictor.from_path(args.checkpoint)
    n = 0
    right = {"photo": 0, "screenshot, trim on": 0, "screenshot, trim off": 0}
    seconds = {k: 0.0 for k in right}
    disagree = []
    for folder in args.folders:
        boxes = json.loads((folder / "boxes.json").read_text())
        for rel, entry in sorted(boxes.items()):
            truth = Path(rel).parts[0]
            shot = folder / rel
            for key, source, trim in (
                ("photo", entry["source"], False),
                ("screenshot, trim on", shot, True),
                ("screenshot, trim off", shot, False),
            ):
                t0 = time.perf_counter()
                label = predictor.predict(source, trim=trim).label
                seconds[key] += time.perf_counter() - t0
                right[key] += label == truth
                if key == "screenshot, trim on" and label != truth:
                    disagree.append(str(shot))
            n += 1
    print(f"checkpoint: {args.checkpoint}")
    print(f"{n} screenshots of {n} photos")
    print(f"{'input':24s} {'accuracy':>9s} {'ms/image':>9s}")
    for key in right:
        print(f"{key:24s} {right[key] / n:9.3f} {1000 * seconds[key] / n:9.1f}")
    if disagree:
        print("wrong with trim on:", *disagree[:15], sep="\n  ")


if __name__ == "__main__":
    main()
