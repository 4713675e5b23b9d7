"""Prediction: a Predictor wraps one validated checkpoint and returns a probability per class."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .images import load_image
from .preprocess import decode_hint, load_for_model, normalize
from .trim import trim_screenshot

UNSURE_BELOW = 0.7  # top probability under this is reported as "not sure"
# Trimming looks at the whole picture, but finding a screenshot's borders does not need every pixel
# of a camera photo: a JPEG decodes at the smallest DCT scale that keeps both sides at least this
# (an 8000x6000 photo as 2000x1500: a sixteenth of the pixels). JPEGs with a side under 2048 pixels
# and all other formats decode at full size, so the box stays in the input's pixels for them.
TRIM_DECODE_MIN = (1024, 1024)


@dataclass
class Prediction:
    probabilities: dict[str, float]  # class -> probability, summing to 1
    seen: Image.Image  # exactly what the network saw, after resize/crop (before normalisation)
    box: tuple[int, int, int, int]  # the region of the input that was classified (trim)
    size: tuple[int, int]  # the input image's size as decoded (a large JPEG decodes reduced)
    image: Image.Image  # the input as decoded, before trimming: `box` is in its pixels

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    @property
    def sure(self) -> bool:
        return self.confidence >= UNSURE_BELOW

    @property
    def trimmed(self) -> bool:
        return self.box != (0, 0, *self.size)


class Predictor:
    """Classifies PIL images or files with one checkpoint. Safe to call from several threads."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.spec = checkpoint.input_spec
        self.classes = checkpoint.classes

    @classmethod
    def from_path(cls, path: str | Path, device: str = "auto") -> "Predictor":
        return cls(load_checkpoint(path, device))

    def predict(self, source, *, trim: bool = False) -> Prediction:
        """`source`: a path, bytes, file object or PIL image. `trim`: cut screenshot chrome first."""
        # Trimming looks at the whole screenshot, so it gets a larger draft than the model needs.
        decoded = load_image(source, min_size=TRIM_DECODE_MIN if trim else decode_hint(self.spec))
        image, box = trim_screenshot(decoded) if trim else (decoded, (0, 0, *decoded.size))
        x, seen = load_for_model(image, self.spec)
        probs = self.probabilities(x.unsqueeze(0))[0]
        return Prediction(
            {c: float(p) for c, p in zip(self.classes, probs)}, seen=seen, box=box, size=decoded.size, image=decoded
        )

    @torch.inference_mode()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) uint8 -> (B, classes) probabilities on the CPU."""
        model = self.checkpoint.model
        x = normalize(images.to(self.checkpoint.device), self.spec)
        return torch.softmax(model(x).float() / self.checkpoint.temperature, dim=1).cpu()


class ActiveModel:
    """The checkpoint that answers predictions, swapped atomically; a bad file never replaces it.

    Readers take `self.predictor` once per request, so each prediction runs on one complete model
    even while another thread activates a new checkpoint.
    """

    def __init__(self, device: str = "auto") -> None:
        self.device = device
        self.predictor: Predictor | None = None
        self._lock = threading.Lock()  # serialises activations, not predictions

    def activate(self, path: str | Path) -> Predictor:
        """Load and validate `path`, then make it active; CheckpointError leaves the old one active."""
        predictor = Predictor.from_path(path, self.device)
        with self._lock:
            self.predictor = predictor
        return predictor

    def activate_first_usable(self, paths: list[Path]) -> tuple[Predictor | None, list[str]]:
        """Activate the first loadable checkpoint of `paths`; returns it and the errors met."""
        errors = []
        for p in paths:
            try:
                return self.activate(p), errors
            except CheckpointError as e:
                errors.append(str(e))
        return None, errors
