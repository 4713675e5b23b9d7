"""The seed's own training loop (the book's chapter 2, as the blog post ran it), kept faithfully
as the baseline that fishcat is compared against.

What it does, as the original did:
  - torchvision ImageFolder for train/ and val/ with a loader that does Image.open(p).convert("RGB")
    (and the book's check_image as is_valid_file),
  - transforms Resize((64, 64)), ToTensor(), Normalize(ImageNet mean/std),
  - DataLoader(batch_size=64), shuffle=False, num_workers=0 (every image is decoded again every epoch),
  - the book's SimpleNet (fishcat.models.SimpleNet, same architecture), Adam lr=0.001,
    CrossEntropyLoss, 20 epochs, validation after each epoch printed as the book's line.
The only differences: validation runs on val/ (book-catfish has no test/ folder) and the
weights are seeded (torch.manual_seed(0)) so the accuracy is reproducible; timing is unaffected.

Run from the repo root:
    .venv/bin/python bench/original.py [--data ../shared/datasets/book-catfish] [--epochs 20]
Prints each epoch, then the wall time (scan + 20 epochs + validation) and the last val accuracy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torch.optim as optim
import torchvision
from PIL import Image
from torch import nn
from torch.utils import data
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # repo root, for `python bench/original.py`

from bench._common import add_data_arg, check_data  # noqa: E402
from fishcat.models import SimpleNet  # noqa: E402


def check_image(path):
    try:
        Image.open(path)
        return True
    except Exception:
        return False


def rgb_loader(path):
    img = Image.open(path)
    return img.convert("RGB")


img_transforms = transforms.Compose(
    [
        transforms.Resize((64, 64)),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ]
)


def train(model, optimizer, loss_fn, train_loader, val_loader, epochs=20, device="cpu", verbose=True):
    """The book's train(): one pass over train_loader, then validation, printing one line per epoch."""
    history = []
    for epoch in range(epochs):
        training_loss = 0.0
        valid_loss = 0.0
        model.train()
        for batch in train_loader:
            optimizer.zero_grad()
            inputs, targets = batch
            inputs = inputs.to(device)
            targets = targets.to(device)
            output = model(inputs)
            loss = loss_fn(output, targets)
            loss.backward()
            optimizer.step()
            training_loss += loss.data.item() * inputs.size(0)
        training_loss /= len(train_loader.dataset)

        model.eval()
        num_correct = 0
        num_examples = 0
        for batch in val_loader:
            inputs, targets = batch
            inputs = inputs.to(device)
            output = model(inputs)
            targets = targets.to(device)
            loss = loss_fn(output, targets)
            valid_loss += loss.data.item() * inputs.size(0)
            correct = torch.eq(torch.max(F.softmax(output, dim=1), dim=1)[1], targets)
            num_correct += torch.sum(correct).item()
            num_examples += correct.shape[0]
        valid_loss /= len(val_loader.dataset)
        accuracy = num_correct / num_examples
        history.append((training_loss, valid_loss, accuracy))
        if verbose:
            print(
                "Epoch: {}, Training Loss: {:.2f}, Validation Loss: {:.2f}, accuracy = {:.2f}".format(
                    epoch, training_loss, valid_loss, accuracy
                ),
                flush=True,
            )
    return history


def run_original(data_root, epochs=20, seed=0, verbose=True) -> dict:
    """Build the loaders and model and run the book's loop; returns {seconds, val_acc, ...}."""
    data_root = Path(data_root)
    if seed is not None:
        torch.manual_seed(seed)
    t0 = time.perf_counter()
    train_data = torchvision.datasets.ImageFolder(
        root=str(data_root / "train"), transform=img_transforms, loader=rgb_loader, is_valid_file=check_image
    )
    val_data = torchvision.datasets.ImageFolder(
        root=str(data_root / "val"), transform=img_transforms, loader=rgb_loader, is_valid_file=check_image
    )
    batch_size = 64
    train_loader = data.DataLoader(train_data, batch_size=batch_size)
    val_loader = data.DataLoader(val_data, batch_size=batch_size)

    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    simplenet = SimpleNet()
    simplenet.to(device)
    optimizer = optim.Adam(simplenet.parameters(), lr=0.001)
    history = train(simplenet, optimizer, nn.CrossEntropyLoss(), train_loader, val_loader, epochs, device, verbose)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "val_acc": history[-1][2],
        "n_train": len(train_data),
        "n_val": len(val_data),
        "classes": train_data.classes,
        "device": str(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arg(parser)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    data_root = check_data(args.data)
    r = run_original(data_root, args.epochs)
    print(f"original loop: {r['n_train']} train / {r['n_val']} val images, classes {r['classes']}, device {r['device']}")
    print(f"original loop: {r['seconds']:.1f}s, last val accuracy {r['val_acc']:.4f}")


if __name__ == "__main__":
    main()
