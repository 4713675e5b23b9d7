"""Helpers for the app tests (test_app, test_app_e2e, test_browser): tiny generated data sets and
a real `python app.py` in a subprocess on a free port, with temp checkpoint and data folders.

Not a test module and not a conftest: the app tests import it by name, so they do not depend on
fixtures that other test files own.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CKPT = ROOT / "checkpoints" / "default.pt"
EXAMPLES = ROOT / "assets" / "examples"
SCREENSHOT_CAT = EXAMPLES / "screenshot-cat.png"  # an RGBA 1280x800 screenshot of a photo viewer
CHELSEA = EXAMPLES / "scikit-image__chelsea.png"

COLOURS = {"cat": (200, 40, 40), "fish": (40, 60, 200)}


def colour_image(colour: tuple[int, int, int], seed: int, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    arr = np.asarray(colour, dtype=np.int16)[None, None, :] + rng.integers(-30, 31, size=(h, w, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if mode == "RGBA":
        img.putalpha(255)
    return img


def make_dataset(root: Path, counts: tuple[int, int, int] = (8, 3, 3), classes: tuple[str, ...] = ("cat", "fish")) -> Path:
    """root/{train,val,test}/<class>/<n>.png|jpg: reddish cats, bluish fish (trivially separable)."""
    for si, (split, n) in enumerate(zip(("train", "val", "test"), counts)):
        for ci, c in enumerate(classes):
            folder = root / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = colour_image(COLOURS.get(c, (40, 190, 50)), seed=si * 10_000 + ci * 1000 + i)
                img.save(folder / f"{c}_{i:03d}{'.jpg' if i % 2 else '.png'}")
    return root


def make_corrupt_dataset(root: Path, n: int = 4) -> Path:
    """The book layout, but every "image" is a text file or a truncated JPEG: nothing decodes."""
    good = io.BytesIO()
    colour_image((120, 120, 120), 0, size=(64, 48)).save(good, "JPEG")
    for split in ("train", "val", "test"):
        for c in ("cat", "fish"):
            folder = root / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                if i % 2:
                    (folder / f"{c}_{i}.png").write_text("not a picture\n")
                else:
                    (folder / f"{c}_{i}.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 4])
    return root


def zip_folder(folder: Path, zip_path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(folder).as_posix())
    return zip_path


def rgba_screenshot(path: Path) -> Path:
    """A synthetic RGBA 'screenshot': grey window chrome, a transparent margin, a reddish picture."""
    img = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    img.paste(Image.new("RGBA", (400, 28), (230, 230, 230, 255)), (0, 0))
    img.paste(colour_image(COLOURS["cat"], 7, size=(200, 150), mode="RGBA"), (100, 90))
    img.save(path)
    return path


def checkpoint_dir(tmp: Path) -> Path:
    """A temp checkpoints/ holding a copy of the shipped default.pt (the repo's folder is never written)."""
    ck = tmp / "checkpoints"
    ck.mkdir(parents=True, exist_ok=True)
    shutil.copy2(DEFAULT_CKPT, ck / "default.pt")
    return ck


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppServer:
    """`python app.py` in a subprocess; `url` once it answers HTTP."""

    proc: subprocess.Popen
    port: int
    checkpoints: Path
    data_dir: Path
    log: Path
    started: float = field(default_factory=time.perf_counter)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 180.0) -> float:
        """Block until the page answers; returns seconds since launch. Raises with the log on failure."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(self.url + "config", timeout=5) as r:
                    if r.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"app.py did not answer on port {self.port} within {timeout:.0f}s:\n{self.log_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # Ctrl+C (SIGINT) takes seconds: gradio re-checks its URL
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


_shared: AppServer | None = None


def shared_app(request, tmp_path_factory) -> AppServer:
    """One app for the whole pytest session (test_app_e2e and test_browser share it: a start costs
    15-40 s); stopped when the session ends. Tests must not assume which model is active."""
    global _shared
    if _shared is None or _shared.proc.poll() is not None:
        srv = launch_app(tmp_path_factory.mktemp("app"))
        request.config.add_cleanup(srv.stop)
        try:
            srv.wait_ready()
        except BaseException:
            srv.stop()
            raise
        _shared = srv
    return _shared


def launch_app(tmp: Path, *extra: str) -> AppServer:
    """Start app.py on a free port with temp checkpoints (a copy of default.pt) and data folders."""
    ck = checkpoint_dir(tmp)
    data = tmp / "data"
    port = free_port()
    log = tmp / "app.log"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    env.pop("GRADIO_SERVER_NAME", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--checkpoints", str(ck), "--data-dir", str(data), "--device", "cpu", *extra],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return AppServer(proc, port, ck, data, log)
