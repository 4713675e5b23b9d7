"""The one preprocessing path: a model's InputSpec turns an RGB image into the tensor it sees.

Training, evaluation and prediction all call `prepare_image` and `normalize`, so they cannot drift.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from .images import load_image


@dataclass(frozen=True)
class InputSpec:
    """What a model expects: a square `size` input, resized as `resize` says, then normalised.

    resize="stretch": Resize((size, size)) as the book does (aspect ratio not kept).
    resize="center-crop": shorter side to `size / crop_fraction`, then CenterCrop(size).
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "stretch"
    crop_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.resize not in ("stretch", "center-crop"):
            raise ValueError(f"unknown resize mode {self.resize!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        return cls(
            size=int(d["size"]),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
            resize=str(d.get("resize", "stretch")),
            crop_fraction=float(d.get("crop_fraction", 1.0)),
        )

    def describe(self) -> list[str]:
        """The steps in words, as `prepare_image` and `normalize` really apply them."""
        steps = ["load: any image -> RGB (transparency onto white, EXIF rotation applied, first frame)"]
        if self.resize == "stretch":
            steps.append(f"resize to {self.size}x{self.size} (bilinear, aspect ratio not kept)")
        else:
            short = self.resize_short_side
            steps.append(f"resize shorter side to {short} (bilinear, aspect ratio kept)")
            steps.append(f"center crop {self.size}x{self.size}")
        steps.append("to tensor: uint8 0..255 -> float 0..1, shape (3, H, W)")
        steps.append(f"normalize: (x - mean) / std with mean={list(self.mean)}, std={list(self.std)}")
        return steps

    @property
    def resize_short_side(self) -> int:
        return int(math.floor(self.size / self.crop_fraction))


def prepare_image(image: Image.Image, spec: InputSpec) -> Image.Image:
    """Resize (and crop) an RGB image to exactly what the network sees, still as a picture."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if spec.resize == "stretch":
        return image.resize((spec.size, spec.size), Image.BILINEAR)
    w, h = image.size
    short = spec.resize_short_side
    # same rounding as torchvision.transforms.Resize(int)
    if w <= h:
        nw, nh = short, max(1, int(short * h / w))
    else:
        nw, nh = max(1, int(short * w / h)), short
    image = image.resize((nw, nh), Image.BILINEAR)
    left = int(round((nw - spec.size) / 2.0))
    top = int(round((nh - spec.size) / 2.0))
    return image.crop((left, top, left + spec.size, top + spec.size))


def to_uint8_tensor(image: Image.Image) -> torch.Tensor:
    """(3, H, W) uint8: the compact form kept in memory for a whole training run."""
    arr = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def normalize(x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """uint8 (B, 3, H, W) or (3, H, W) -> normalised float on x's device."""
    x = x.float().div_(255.0)
    mean = torch.tensor(spec.mean, device=x.device).view(-1, 1, 1)
    std = torch.tensor(spec.std, device=x.device).view(-1, 1, 1)
    return (x - mean) / std


def load_for_model(source, spec: InputSpec) -> tuple[torch.Tensor, Image.Image]:
    """Any image source -> ((3, size, size) uint8 tensor, the prepared picture)."""
    image = source if isinstance(source, Image.Image) else None
    if image is None:
        image = load_image(source, min_size=decode_hint(spec))
    else:
        image = load_image(image)
    seen = prepare_image(image, spec)
    return to_uint8_tensor(seen), seen


def decode_hint(spec: InputSpec) -> tuple[int, int]:
    # Without knowing the file's size up front, ask for a decode that keeps the shorter side
    # at least as large as the spec needs; load_image picks the JPEG draft scale from it.
    need = spec.size if spec.resize == "stretch" else spec.resize_short_side
    return (need, need)
