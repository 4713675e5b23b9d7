"""Helpers shared by tests/test_reliability_*.py (the RELIABILITY.md table, met the way a user meets it).

Not a test module (no test_ prefix); the test files import it by name (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

import app as webapp
from fishcat.checkpoint import save_checkpoint
from fishcat.models import MODELS, build_model

PROJECT = Path(__file__).resolve().parent.parent
SPEC = MODELS["simplenet"].input_spec


def checkpoint_meta(classes: tuple[str, ...], model: str = "simplenet") -> dict:
    """The metadata a real run writes, minus the parts only the UI reads."""
    return {
        "model": model,
        "classes": list(classes),
        "input_spec": MODELS[model].input_spec.to_dict(),
        "config": {},
        "metrics": {"test": None},
        "data": {"root": "tests"},
        "created": "2026-01-01T00:00:00+00:00",
    }


def make_checkpoint(path: Path, classes: tuple[str, ...] = ("cat", "fish"), seed: int = 0) -> Path:
    """A valid simplenet checkpoint with seeded random weights (loads and predicts in milliseconds)."""
    torch.manual_seed(seed)
    net = build_model("simplenet", len(classes))
    return save_checkpoint(net, checkpoint_meta(classes), path)


def new_app(tmp_path: Path, checkpoint: Path | None = None) -> webapp.FishcatApp:
    """A FishcatApp on CPU with its own checkpoint and data folders under tmp_path."""
    fc = webapp.FishcatApp(tmp_path / "checkpoints", tmp_path / "data", device="cpu")
    fc.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    if checkpoint is not None:
        fc.activate(checkpoint)
    return fc


def picture(size: tuple[int, int] = (48, 32), seed: int = 0) -> Image.Image:
    """An asymmetric RGB picture (gradients plus a corner marker): any flip or rotation changes it."""
    w, h = size
    rng = np.random.default_rng(seed)
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = (np.arange(w)[None, :] * 255 // max(1, w - 1)).astype(np.uint8)
    arr[..., 1] = (np.arange(h)[:, None] * 255 // max(1, h - 1)).astype(np.uint8)
    arr[: max(1, h // 3), : max(1, w // 4), 2] = 255
    arr[..., 2] |= rng.integers(0, 40, size=(h, w), dtype=np.uint8)
    return Image.fromarray(arr)


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def gr_message(fn: Callable, *args, match: str | None = None) -> str:
    """Call a handler that must refuse with gr.Error; return its message."""
    with pytest.raises(gr.Error) as info:
        fn(*args)
    message = info.value.message
    assert isinstance(message, str) and message.strip()
    assert "Traceback" not in message
    if match is not None:
        assert re.search(match, message), message
    return message


def assert_still_serving(fc: webapp.FishcatApp, image: Path, classes: set[str] | None = None) -> dict[str, float]:
    """The app answers a good prediction after whatever went wrong before."""
    probs = webapp.predict_api(fc, str(image))
    assert abs(sum(probs.values()) - 1) < 1e-4
    if classes is not None:
        assert set(probs) == classes
    return probs


def run_cli(*args: str, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m fishcat ARGS` in a fresh interpreter, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "fishcat", *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_errors(stderr: str, count: int | None = None) -> list[str]:
    """Every stderr line is a one-line 'error: ...' message; no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("error: ") for line in lines), stderr
    if count is not None:
        assert len(lines) == count, stderr
    return lines


def tree(folder: Path) -> dict[str, int]:
    """{relative path: size} of every file below folder (sizes catch truncation, names catch deletion)."""
    out = {}
    for dirpath, _dirs, files in os.walk(folder):
        for f in files:
            p = Path(dirpath, f)
            out[str(p.relative_to(folder))] = p.lstat().st_size
    return out


def make_zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def zip_folder(folder: Path, path: Path, prefix: str = "") -> list[tuple[str, bytes]]:
    """Entries for every file below folder, named prefix + relative path."""
    entries = []
    for dirpath, _dirs, files in os.walk(folder):
        for f in sorted(files):
            p = Path(dirpath, f)
            entries.append((prefix + p.relative_to(folder).as_posix(), p.read_bytes()))
    return entries


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def train_in_app(fc: webapp.FishcatApp, root: Path, epochs: int = 2, batch_size: int = 8, lr: float = 0.01):
    """Start a run as the Train button does (folder source), wait for it, return the final snapshot."""
    snap, _ = webapp.start_training(fc, webapp.FOLDER, str(root), None, None, "simplenet", epochs, lr, batch_size, 0)
    assert snap.state == "preparing"
    fc.runner.join(timeout=120)
    assert not fc.runner.is_running()
    return fc.runner.snapshot()
