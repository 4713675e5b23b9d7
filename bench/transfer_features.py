"""Which EfficientNet-Lite0 features let a head trained on fishcat's default data (emoji and
clip-art cats and fish, assets/default/train) recognise real photos (all 890 book-catfish images)?

Backs the design claim in fishcat/models.py (EfficientNetLite0Backbone docstring): the head sees
the pooled embedding and the ImageNet class scores, each centred and L2-normalised, side by side.

Variants (features from the pretrained, frozen backbone, images prepared with fishcat's
efficientnet-lite0 InputSpec):
  (a) embedding: net.extract_features -> net._avg_pooling -> flatten, 1280-d, as is;
  (b) embedding-norm: the same embedding, centred, L2-normalised, x5;
  (c) logits-norm: the 1000 ImageNet logits, centred, L2-normalised, x5;
  (d) logits-raw: the 1000 ImageNet logits as they come;
  (e) both-norm: (b) and (c) side by side, times 5/sqrt(2) (what fishcat uses).
For each variant and each seed 0..4 a head is trained exactly as fishcat trains one
(fishcat.train.fit on the features: Dropout(0.2) + Linear, Adam lr 1e-3, batch 64,
20 epochs, reshuffled every epoch) on the 86 images of assets/default/train, then
evaluated on all book-catfish images (train/ + val/, 890). Prints mean and min accuracy.

Run from the repo root:
    .venv/bin/python bench/transfer_features.py [--data ../shared/datasets/book-catfish] [--seeds 5]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # repo root, for `python bench/transfer_features.py`

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench._common import ROOT, add_data_arg, check_data  # noqa: E402
from fishcat.data import Sample, scan_class_folder, scan_dataset  # noqa: E402
from fishcat.models import MODELS, EfficientNetLite0Backbone, TransferNet  # noqa: E402
from fishcat.preprocess import normalize  # noqa: E402
from fishcat.train import TensorData, TrainConfig, decode_samples, evaluate, fit  # noqa: E402

SCALE = EfficientNetLite0Backbone.scale


@torch.inference_mode()
def embed_and_logits(net: nn.Module, samples: list[Sample], batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(1280-d pooled embeddings, 1000 raw ImageNet logits, labels) for the samples."""
    spec = MODELS["efficientnet-lite0"].input_spec
    tensors, kept, skipped = decode_samples(samples, spec)
    if skipped:
        print(f"  skipped {len(skipped)} unreadable image(s)")
    images = torch.stack(tensors)
    embs, logits = [], []
    for i in range(0, len(images), batch_size):
        x = normalize(images[i : i + batch_size], spec).contiguous(memory_format=torch.channels_last)
        e = net._avg_pooling(net.extract_features(x)).flatten(1)
        embs.append(e.float())
        logits.append(net._fc(e).float())  # eval mode: _dropout is a no-op, as in net.forward
    return torch.cat(embs), torch.cat(logits), torch.tensor([s.label for s in kept])


def centred_l2(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(dim=1, keepdim=True)
    return nn.functional.normalize(x, dim=1) * SCALE


def both(emb: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return torch.cat([centred_l2(emb), centred_l2(logits)], dim=1) / math.sqrt(2)


def head_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, seed: int, classes: list[str]):
    config = TrainConfig(model="efficientnet-lite0", epochs=20, batch_size=64, lr=0.001, seed=seed, device="cpu")
    torch.manual_seed(seed)
    head = nn.Sequential(nn.Dropout(0.2), nn.Linear(train_x.shape[1], len(classes)))  # as TransferNet.head
    train_data = TensorData(train_x, train_y, [])
    for _ in fit(head, train_data, None, config):
        pass
    return evaluate(head, TensorData(test_x, test_y, []), classes=classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arg(parser, "book-catfish root (evaluation set: train/ + val/)")
    parser.add_argument("--train-data", type=Path, default=ROOT / "assets" / "default", help="fishcat default data (its train/ split is used)")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    data_root = check_data(args.data)

    train_ds = scan_dataset(args.train_data)
    classes = train_ds.classes
    eval_samples = []
    for split in ("train", "val"):
        ds = scan_class_folder(data_root / split)
        if ds.classes != classes:
            raise SystemExit(f"error: {data_root / split} classes {ds.classes} differ from {classes}")
        eval_samples += ds.splits["test"]
    print(f"train: {args.train_data}/train, {len(train_ds.splits['train'])} images {train_ds.counts()['train']}")
    print(f"eval:  {data_root} train/ + val/, {len(eval_samples)} images", flush=True)

    net = TransferNet(2).backbone.net.eval()  # pretrained, channels_last, as fishcat runs it
    t0 = time.perf_counter()
    tr_emb, tr_log, tr_y = embed_and_logits(net, train_ds.splits["train"])
    ev_emb, ev_log, ev_y = embed_and_logits(net, eval_samples)
    print(f"features of {len(tr_y) + len(ev_y)} images in {time.perf_counter() - t0:.1f}s", flush=True)

    variants = {
        "(a) 1280-d pooled embedding": (tr_emb, ev_emb),
        "(b) embedding centred+L2 x5": (centred_l2(tr_emb), centred_l2(ev_emb)),
        "(c) ImageNet logits centred+L2 x5": (centred_l2(tr_log), centred_l2(ev_log)),
        "(d) raw ImageNet logits": (tr_log, ev_log),
        "(e) both centred+L2 (fishcat)": (both(tr_emb, tr_log), both(ev_emb, ev_log)),
    }
    # check (b) is what the model really computes
    with torch.inference_mode():
        bb = TransferNet(2).backbone.eval()
        from fishcat.train import compute_features

        spec = MODELS["efficientnet-lite0"].input_spec
        imgs, _, _ = decode_samples(train_ds.splits["train"][:8], spec)
        ref = compute_features(bb, torch.stack(imgs), spec, torch.device("cpu"))
    print(f"max |(e) - fishcat compute_features| on 8 images: {(variants['(e) both centred+L2 (fishcat)'][0][:8] - ref).abs().max().item():.2e}")

    print(f"\n=== head trained on {len(tr_y)} default-data images, evaluated on {len(ev_y)} book-catfish photos, {args.seeds} seeds ===")
    print(f"{'features':<36} | {'dim':>4} | {'mean acc':>8} | {'min acc':>7} | {'max acc':>7} | {'mean cat':>8} | {'mean fish':>9} | per seed")
    for name, (trx, evx) in variants.items():
        evals = [head_accuracy(trx, tr_y, evx, ev_y, s, classes) for s in range(args.seeds)]
        accs = [e.accuracy for e in evals]
        per = {c: statistics.mean(e.per_class[c] for e in evals) for c in classes}
        print(f"{name:<36} | {trx.shape[1]:>4} | {statistics.mean(accs):8.4f} | {min(accs):7.4f} | {max(accs):7.4f} | "
              f"{per[classes[0]]:8.4f} | {per[classes[1]]:9.4f} | " + " ".join(f"{a:.3f}" for a in accs), flush=True)


if __name__ == "__main__":
    main()
