"""Checkpoints: a state_dict plus plain metadata, written atomically, loaded with weights_only=True.

A checkpoint is rebuilt from its model name and classes, then validated (known architecture,
matching shapes and class count, finite weights and output) before anything uses it.
"""

from __future__ import annotations

import math
import os
import platform
import re
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .paths import PROJECT_ROOT
from .models import FEATURES_VERSION, MODELS, build_model, resolve_device, trainable_state_dict
from .preprocess import InputSpec

FORMAT = "fishcat-checkpoint"
FORMAT_VERSION = 1
TEMP_PATTERN = re.compile(r"^\..+\.\d+\.tmp$")  # ".<name>.<pid>.tmp", as written by save_checkpoint


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the file name and the reason."""


@dataclass
class Checkpoint:
    """A loaded, validated checkpoint: the model in eval mode and its metadata."""

    path: Path | None
    model: nn.Module
    meta: dict

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def model_name(self) -> str:
        return self.meta["model"]

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec.from_dict(self.meta["input_spec"])

    @property
    def temperature(self) -> float:
        return float(self.meta.get("temperature", 1.0))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def _versions() -> dict:
    import torchvision

    return {"fishcat": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__), "python": platform.python_version()}


def build_metadata(result) -> dict:
    """Plain metadata (str/int/float/list/dict only) of a fishcat.train.TrainResult."""
    last = result.history[-1] if result.history else None
    counts = result.dataset.counts()
    return {
        "model": result.model_name,
        "classes": list(result.classes),
        "input_spec": result.input_spec.to_dict(),
        "temperature": float(result.temperature),
        "config": asdict(result.config),
        "metrics": {
            "test": result.test.to_dict() if result.test else None,
            "val_accuracy": last.val_acc if last else None,
            "val_loss": last.val_loss if last else None,
            "train_accuracy": last.train_acc if last else None,
            "history": [asdict(h) for h in result.history],
            "train_seconds": result.seconds,
        },
        "data": {
            "root": _portable(result.dataset.root),
            "counts": counts,
            "notes": list(result.dataset.notes),
            "skipped": [[str(p), why] for p, why in result.skipped],
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
    }


def _portable(path: Path) -> str:
    """A path inside the project is stored relative to it, so a shipped checkpoint reads well anywhere."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def save_checkpoint(model: nn.Module, meta: dict, path: str | Path) -> Path:
    """Write atomically: a temp file in the same folder, fsync, then os.replace over `path`."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "features_version": FEATURES_VERSION,  # what the frozen backbone's features were when the head was trained
        **meta,
        "state_dict": trainable_state_dict(meta["model"], model),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise CheckpointError(f"{path.name}: could not save checkpoint: {e.strerror or e}") from e
        raise
    return path


def clean_temp_files(folder: str | Path) -> list[Path]:
    """Remove leftovers of interrupted saves (our own temp-file pattern only)."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_file() and TEMP_PATTERN.match(p.name):
                try:
                    p.unlink()
                    removed.append(p)
                except OSError:
                    pass
    return removed


def read_checkpoint_file(path: str | Path) -> dict:
    """The raw dict, loaded with weights_only=True (a pickle that would run code is refused)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.name}: checkpoint file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path.name}: empty file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for unsafe pickles, RuntimeError/EOFError for damaged files
        reason = "refused: it holds Python objects that a weights-only load will not run" if "weights_only" in str(e) or "Unsupported global" in str(e) else f"unreadable ({type(e).__name__})"
        raise CheckpointError(f"{path.name}: not a usable fishcat checkpoint: {reason}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path.name}: not a fishcat checkpoint (no '{FORMAT}' marker)")
    return data


def load_checkpoint(path: str | Path, device: str | torch.device = "auto") -> Checkpoint:
    """Load, rebuild and validate a checkpoint; raises CheckpointError with the reason."""
    path = Path(path)
    data = read_checkpoint_file(path)
    return checkpoint_from_dict(data, path, device)


def checkpoint_from_dict(data: dict, path: Path | None, device: str | torch.device = "auto") -> Checkpoint:
    name = path.name if path else "checkpoint"
    model_name = data.get("model")
    if model_name not in MODELS:
        raise CheckpointError(f"{name}: unknown architecture {model_name!r}; known: {', '.join(MODELS)}")
    classes = data.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise CheckpointError(f"{name}: needs a list of at least 2 class names")
    state = data.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{name}: no state_dict of tensors")
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{name}: weights contain NaN or infinity ({k})")
    try:
        spec = InputSpec.from_dict(data["input_spec"])
    except Exception:
        raise CheckpointError(f"{name}: missing or invalid input_spec") from None
    if spec != MODELS[model_name].input_spec:
        raise CheckpointError(f"{name}: input_spec {spec} does not match model {model_name!r}")
    temperature = data.get("temperature", 1.0)
    if not isinstance(temperature, (int, float)) or not (0 < temperature < math.inf):
        raise CheckpointError(f"{name}: temperature must be a positive number, not {temperature!r}")
    frozen = MODELS[model_name].frozen_backbone
    if frozen and data.get("features_version") != FEATURES_VERSION:
        raise CheckpointError(
            f"{name}: made by a fishcat whose {model_name} features differ (version {data.get('features_version')!r}, "
            f"this one uses {FEATURES_VERSION}); train it again"
        )
    model = build_model(model_name, len(classes))
    try:
        result = model.load_state_dict(state, strict=not frozen)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(f"{name}: weights do not fit {model_name!r} with {len(classes)} classes ({first[1].strip() if len(first) > 1 else first[0]})") from None
    if frozen:
        missing = [k for k in result.missing_keys if not k.startswith("backbone.")]
        if missing or result.unexpected_keys:
            raise CheckpointError(f"{name}: weights do not fit {model_name!r}: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}")
    model.to(resolve_device(device) if isinstance(device, str) else device).eval()
    with torch.no_grad():
        probe = torch.zeros(1, 3, spec.size, spec.size, device=next(model.parameters()).device)
        out = model(probe)
    if out.shape != (1, len(classes)) or not torch.isfinite(out).all():
        raise CheckpointError(f"{name}: model output is not {len(classes)} finite numbers")
    meta = {k: v for k, v in data.items() if k != "state_dict"}
    return Checkpoint(path=path, model=model, meta=meta)


@dataclass
class CheckpointInfo:
    """A row in the checkpoint list; `error` is set for a file that is not usable."""

    path: Path
    model: str = ""
    classes: tuple[str, ...] = ()
    test_accuracy: float | None = None
    data_root: str = ""
    created: str = ""
    error: str | None = None

    def label(self) -> str:
        if self.error:
            return f"{self.path.name}: {self.error}"
        acc = "n/a" if self.test_accuracy is None or math.isnan(self.test_accuracy) else f"{self.test_accuracy:.1%}"
        return f"{self.path.name} | {self.model} | {'/'.join(self.classes)} | test {acc} | {Path(self.data_root).name or self.data_root} | {self.created[:16].replace('T', ' ')}"


def inspect_checkpoint(path: Path) -> CheckpointInfo:
    try:
        data = read_checkpoint_file(path)
        test = (data.get("metrics") or {}).get("test") or {}
        return CheckpointInfo(
            path=path,
            model=str(data.get("model")),
            classes=tuple(data.get("classes") or ()),
            test_accuracy=test.get("accuracy"),
            data_root=str((data.get("data") or {}).get("root", "")),
            created=str(data.get("created", "")),
        )
    except CheckpointError as e:
        return CheckpointInfo(path=path, error=str(e).split(": ", 1)[-1])


def list_checkpoints(folder: str | Path) -> list[CheckpointInfo]:
    """Every *.pt in the folder, newest first; unusable ones carry their reason in `error`."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    paths = [p for p in folder.glob("*.pt") if p.is_file() and not p.name.startswith(".")]
    paths.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [inspect_checkpoint(p) for p in paths]


def new_checkpoint_path(folder: str | Path, model_name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(folder) / f"{stamp}-{model_name}.pt"
    n = 1
    while path.exists():
        path = Path(folder) / f"{stamp}-{model_name}-{n}.pt"
        n += 1
    return path
