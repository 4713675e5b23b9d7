"""The one background training thread of an app: start, stop, watch, and hand over the checkpoint.

This is the only module that starts threads. A JobRunner runs at most one training job at a
time; anyone (another tab, another browser, an API client) can read its snapshot or wait for
the next update, and a second start while one runs is refused with JobBusy.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .checkpoint import build_metadata, new_checkpoint_path, save_checkpoint
from .data import Dataset
from .train import EpochStats, Progress, TrainConfig, TrainResult, train

THREAD_NAME = "fishcat-training"


class JobBusy(RuntimeError):
    """A training run is already in progress."""


@dataclass(frozen=True)
class JobSnapshot:
    """An immutable view of a job for a UI: safe to read from any thread."""

    job_id: int
    state: str  # "preparing", "training", "finished", "stopped", "failed"
    config: TrainConfig
    data_root: str
    classes: tuple[str, ...]
    history: tuple[EpochStats, ...] = ()
    progress: Progress | None = None
    started: float = 0.0
    finished: float | None = None
    error: str | None = None
    checkpoint: Path | None = None
    result: TrainResult | None = field(default=None, compare=False, repr=False)
    version: int = 0  # bumps on every change; wait_for_update() compares it

    @property
    def running(self) -> bool:
        return self.state in ("preparing", "training")

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    def eta_seconds(self) -> float | None:
        """Time left, from the mean epoch time so far and the current epoch's batch counter."""
        if self.state != "training" or not self.history:
            return None
        per_epoch = sum(h.seconds for h in self.history) / len(self.history)
        p = self.progress
        in_epoch = p.done / max(1, p.total) if p and p.stage == "train" and p.epoch == len(self.history) else 0.0
        return max(0.0, (self.config.epochs - len(self.history) - in_epoch) * per_epoch)


class JobRunner:
    """Owns the single training thread. `on_checkpoint(path)` is called (in the thread) after a save."""

    def __init__(
        self,
        checkpoint_dir: Path,
        cache_dir: Path | None = None,
        on_checkpoint: Callable[[Path], None] | None = None,
    ) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.cache_dir = cache_dir
        self.on_checkpoint = on_checkpoint
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._snapshot: JobSnapshot | None = None
        self._next_id = 1

    # --- reading -------------------------------------------------------------------------------
    def snapshot(self) -> JobSnapshot | None:
        with self._lock:
            return self._snapshot

    def wait_for_update(self, since_version: int, timeout: float) -> JobSnapshot | None:
        """Block until the job's version passes `since_version` (or timeout); return the snapshot."""
        with self._changed:
            self._changed.wait_for(lambda: self._snapshot is not None and self._snapshot.version > since_version, timeout=timeout)
            return self._snapshot

    def is_running(self) -> bool:
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    # --- control -------------------------------------------------------------------------------
    def start(self, config: TrainConfig, dataset: Dataset) -> JobSnapshot:
        """Start a run in the background thread; JobBusy if one is in progress."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise JobBusy("a training run is already in progress; wait for it or press Stop")
            self._stop.clear()
            job_id = self._next_id
            self._next_id += 1
            version = self._snapshot.version + 1 if self._snapshot else 1
            self._snapshot = JobSnapshot(
                job_id=job_id,
                state="preparing",
                config=config,
                data_root=str(dataset.root),
                classes=tuple(dataset.classes),
                started=time.time(),
                version=version,
            )
            self._thread = threading.Thread(target=self._run, args=(config, dataset), name=THREAD_NAME, daemon=True)
            self._thread.start()
            self._changed.notify_all()
            return self._snapshot

    def stop(self) -> bool:
        """Ask the running job to stop (it checks before every batch). False if none runs."""
        if not self.is_running():
            return False
        self._stop.set()
        return True

    def join(self, timeout: float | None = None) -> None:
        t = self._thread
        if t is not None:
            t.join(timeout)

    # --- the thread ----------------------------------------------------------------------------
    def _update(self, **changes) -> None:
        with self._changed:
            snap = self._snapshot
            assert snap is not None
            self._snapshot = replace(snap, version=snap.version + 1, **changes)
            self._changed.notify_all()

    def _run(self, config: TrainConfig, dataset: Dataset) -> None:
        history: list[EpochStats] = []

        def on_progress(p: Progress) -> None:
            self._update(progress=p, state="training" if p.stage in ("train", "evaluate") else "preparing")

        try:
            result: TrainResult | None = None
            for event in train(config, dataset, stop=self._stop.is_set, on_progress=on_progress, cache_dir=self.cache_dir):
                if isinstance(event, EpochStats):
                    history.append(event)
                    self._update(history=tuple(history), state="training")
                else:
                    result = event
            assert result is not None
            if result.stopped:
                self._update(state="stopped", finished=time.time(), result=result)
                return
            path = save_checkpoint(result.model, build_metadata(result), new_checkpoint_path(self.checkpoint_dir, config.model))
            if self.on_checkpoint is not None:
                self.on_checkpoint(path)
            self._update(state="finished", finished=time.time(), result=result, checkpoint=path)
        except Exception as e:  # the run fails; the app and its active model carry on
            reason = str(e) or type(e).__name__
            if not isinstance(e, (ValueError, RuntimeError, OSError)):
                reason = f"{type(e).__name__}: {reason}\n{traceback.format_exc(limit=3)}"
            self._update(state="failed", finished=time.time(), error=reason)
