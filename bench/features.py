"""EfficientNet-Lite0 backbone feature extraction speed per image on this machine's CPU:
channels_last (as fishcat.models.EfficientNetLite0Backbone runs it) vs a plain contiguous copy,
for batch sizes 1, 4, 8, 16, 32.

Backs two comments in fishcat: "channels_last: 1.1-1.5x faster depthwise convolutions on CPU"
(models.py) and "batches of 4 are fastest on a 2-core CPU" (train.compute_features).

Inputs are real book-catfish images prepared exactly as training does (fishcat's
efficientnet-lite0 InputSpec, then normalize). The channels_last model is
fishcat.models.TransferNet(2).backbone; the contiguous one is the same backbone with its
weights and input kept in the contiguous (NCHW) layout.
Each (layout, batch size) is warmed up once, then timed over --images images for --rounds
rounds, interleaving the two layouts so that background load hits both; the best round is
reported (median also shown). Threads: torch default (torch.get_num_threads()) unless
--threads N. The 1-minute load average is printed per batch size: on 2 cores with other
processes running, multi-threaded kernels lose far more than single-threaded ones, so when
the load is high compare with --threads 1.

Run from the repo root:
    .venv/bin/python bench/features.py [--data ../shared/datasets/book-catfish] [--images 64] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # repo root, for `python bench/features.py`

import torch  # noqa: E402
from torch import nn  # noqa: E402


from bench._common import add_data_arg, check_data, loadavg  # noqa: E402
from fishcat.data import list_images  # noqa: E402
from fishcat.models import MODELS, EfficientNetLite0Backbone, TransferNet  # noqa: E402
from fishcat.preprocess import load_for_model, normalize  # noqa: E402


class ContiguousBackbone(EfficientNetLite0Backbone):
    """The same computation as EfficientNetLite0Backbone, but weights and input stay contiguous (NCHW)."""

    def __init__(self) -> None:
        super().__init__()
        self.memory_format = torch.contiguous_format
        self.net.to(memory_format=self.memory_format)


@torch.inference_mode()
def time_per_image(model: nn.Module, x: torch.Tensor, batch_size: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(x), batch_size):
        model(x[i : i + batch_size])
    return (time.perf_counter() - t0) / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arg(parser)
    parser.add_argument("--images", type=int, default=64, help="images per timed round (default 64)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1,4,8,16,32")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: leave torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data_root = check_data(args.data)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    spec = MODELS["efficientnet-lite0"].input_spec
    paths = list_images(data_root / "train")[:: max(1, 788 // args.images)][: args.images]
    x = normalize(torch.stack([load_for_model(p, spec)[0] for p in paths]), spec)  # (N, 3, 224, 224) float, contiguous
    print(f"{len(x)} real images, input {tuple(x.shape[1:])}, torch {torch.__version__}, threads {torch.get_num_threads()}, load {loadavg()}")

    cl = TransferNet(2).backbone.eval()
    plain = ContiguousBackbone().eval()
    with torch.inference_mode():
        diff = (cl(x[:8]) - plain(x[:8])).abs().max().item()
    print(f"max |channels_last - contiguous| on the features: {diff:.2e}", flush=True)
    models = {"channels_last": cl, "contiguous": plain}

    results: dict[tuple[str, int], list[float]] = {}
    for bs in batch_sizes:
        for m in models.values():  # warm-up (oneDNN picks kernels per shape)
            time_per_image(m, x[: max(bs, 2 * bs)], bs)
        for _ in range(args.rounds):
            for name, m in models.items():
                results.setdefault((name, bs), []).append(time_per_image(m, x, bs))
        print(f"  batch {bs:>2}: " + ", ".join(f"{n} {min(results[(n, bs)]) * 1000:.1f} ms/img" for n in models) + f"  (load {loadavg()})", flush=True)

    print(f"\n=== EfficientNet-Lite0 backbone, ms per image (best of {args.rounds} rounds over {len(x)} images; median in brackets) ===")
    print(f"{'batch':>5} | {'channels_last':>20} | {'contiguous':>20} | {'contiguous / channels_last':>26}")
    for bs in batch_sizes:
        a, b = results[("channels_last", bs)], results[("contiguous", bs)]
        print(f"{bs:>5} | {min(a) * 1000:8.1f} [{statistics.median(a) * 1000:7.1f}]   | "
              f"{min(b) * 1000:8.1f} [{statistics.median(b) * 1000:7.1f}]   | {min(b) / min(a):25.2f}x")
    best = {n: min(batch_sizes, key=lambda bs: min(results[(n, bs)])) for n in models}
    print(f"\nfastest batch size: channels_last {best['channels_last']}, contiguous {best['contiguous']}")
    speedups = [min(results[("contiguous", bs)]) / min(results[("channels_last", bs)]) for bs in batch_sizes]
    print(f"channels_last speed-up over contiguous: {min(speedups):.2f}x .. {max(speedups):.2f}x "
          f"(models.py says 1.1-1.5x)")


if __name__ == "__main__":
    main()
