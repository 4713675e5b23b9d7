"""RELIABILITY.md, "Faults to survive" (all but the checkpoint and server rows, which live in
test_reliability_checkpoints.py and test_reliability_server.py): concurrent predictions during training
and checkpoint swaps, double starts, Stop, failing runs, reattaching, and a missing/empty/read-only
checkpoints folder. Everything goes through FishcatApp and the app's handlers.
"""

from __future__ import annotations

import builtins
import errno
import os
import statistics
import threading
import time
from pathlib import Path

import gradio as gr
import pytest
import torch

import app as webapp
from _reliability import (
    assert_still_serving,
    encode,
    gr_message,
    make_checkpoint,
    new_app,
    picture,
    train_in_app,
    wait_until,
    write,
)
from fishcat import checkpoint as ckmod
from fishcat import jobs
from fishcat.jobs import THREAD_NAME, JobBusy
from fishcat.train import TrainConfig, TrainingError

FOLDER = webapp.FOLDER
CAT_FISH = {"cat", "fish"}
RED_BLUE = {"red", "blue"}


@pytest.fixture
def two(tmp_path: Path):
    """An app serving cat/fish, a second checkpoint red/blue beside it, a probe image, a data set."""
    a = make_checkpoint(tmp_path / "app" / "checkpoints" / "a-catfish.pt", ("cat", "fish"), seed=1)
    b = make_checkpoint(tmp_path / "app" / "checkpoints" / "b-redblue.pt", ("red", "blue"), seed=2)
    fc = new_app(tmp_path / "app", a)
    image = write(tmp_path / "probe.png", encode(picture((64, 64)), "PNG"))
    return fc, a, b, image


def start(fc, root: Path, epochs: int = 1000, batch_size: int = 2):
    """Start a long run (stopped by the test) the way the Train button does."""
    snap, _ = webapp.start_training(fc, FOLDER, str(root), None, None, "simplenet", epochs, 0.001, batch_size, 0)
    return snap


def training_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == THREAD_NAME)


def stop_and_join(fc) -> None:
    fc.runner.stop()
    fc.runner.join(timeout=60)
    assert not fc.runner.is_running()


# ---------------------------------------------------------------- load during training and swaps


def test_concurrent_predictions_during_training_and_checkpoint_swaps(two, tmp_path: Path, gen) -> None:
    """8 threads x 20 predictions through the `predict` API while a run trains and another thread swaps
    the active checkpoint between cat/fish and red/blue as fast as it can."""
    fc, a, b, image = two
    root = gen.make_book_dataset(tmp_path / "book", classes=("green", "blue"), counts=(12, 4, 4))
    start(fc, root)
    wait_until(lambda: fc.runner.snapshot().state == "training", timeout=60)
    n_threads, per_thread = 8, 20
    latencies: list[float] = []
    answers: list[frozenset[str]] = []
    errors: list[BaseException] = []
    most_training_threads = 0
    swaps = 0
    busy_refusals: list[str] = []
    dataset = _dataset(root)
    done = threading.Event()
    barrier = threading.Barrier(n_threads + 1)

    def predictor() -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                t0 = time.perf_counter()
                probs = webapp.predict_api(fc, str(image))
                latencies.append(time.perf_counter() - t0)
                answers.append(frozenset(probs))
                assert abs(sum(probs.values()) - 1) < 1e-4
                assert all(0 <= p <= 1 for p in probs.values())
        except BaseException as e:  # noqa: BLE001 - collected and reported below
            errors.append(e)

    def swapper() -> None:
        nonlocal swaps
        try:
            barrier.wait()
            while not done.is_set():
                fc.activate(b if swaps % 2 == 0 else a)
                swaps += 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def watcher() -> None:
        nonlocal most_training_threads
        while not done.is_set():
            most_training_threads = max(most_training_threads, training_threads())
            try:  # a second Train press, and an API client starting a run directly
                start(fc, root)
                errors.append(AssertionError("a second run started"))
            except gr.Error as e:
                busy_refusals.append(e.message)
            try:
                fc.runner.start(TrainConfig(model="simplenet", epochs=1, device="cpu"), dataset)
                errors.append(AssertionError("runner.start did not refuse"))
            except JobBusy as e:
                busy_refusals.append(str(e))
            time.sleep(0.01)

    workers = [threading.Thread(target=predictor) for _ in range(n_threads)] + [threading.Thread(target=swapper)]
    watch = threading.Thread(target=watcher)
    before = fc.runner.snapshot()
    t_start = time.perf_counter()
    watch.start()
    for w in workers:
        w.start()
    for w in workers[:-1]:
        w.join(timeout=300)
    done.set()
    workers[-1].join(timeout=60)
    watch.join(timeout=60)
    wall = time.perf_counter() - t_start
    snap = fc.runner.snapshot()
    assert snap.running, "the run must still be going: every prediction above ran during training"
    assert snap.version > before.version  # and the run kept making progress meanwhile
    batches = _batches(snap) - _batches(before)
    stop_and_join(fc)

    assert errors == []
    assert len(answers) == n_threads * per_thread
    assert set(answers) <= {frozenset(CAT_FISH), frozenset(RED_BLUE)}  # always one whole model, never a mix
    assert swaps >= 2  # both directions (activation reads and validates the file each time)
    assert most_training_threads == 1 and training_threads() == 0
    assert busy_refusals and all("already in progress" in m for m in busy_refusals)
    assert fc.runner.snapshot().state == "stopped"
    assert fc.active.predictor.checkpoint.path in (a, b)  # the stopped run did not replace it
    ms = sorted(x * 1000 for x in latencies)
    print(
        f"\nload: {len(ms)} predictions from {n_threads} threads in {wall:.1f}s while training ran {batches} batches and {swaps} "
        f"checkpoint swaps: median {statistics.median(ms):.1f} ms, p95 {ms[int(len(ms) * 0.95)]:.1f} ms, worst {ms[-1]:.1f} ms; "
        f"answers cat/fish {sum(1 for x in answers if x == CAT_FISH)}, red/blue {sum(1 for x in answers if x == RED_BLUE)}; "
        f"{len(busy_refusals)} second starts refused"
    )


def _batches(snap) -> int:
    p = snap.progress
    if p is None or p.epoch is None:
        return 0
    return p.epoch * p.total + p.done


def _dataset(root: Path):
    from fishcat.data import scan_dataset

    return scan_dataset(root)


# ---------------------------------------------------------------- double start, stop, reattach


def test_train_pressed_many_times_at_once_starts_exactly_one_run(two, tmp_path: Path, gen) -> None:
    fc, a, b, image = two
    root = gen.make_book_dataset(tmp_path / "book", counts=(6, 2, 2))
    n = 6
    barrier = threading.Barrier(n)
    started, refused, other = [], [], []

    def press() -> None:
        barrier.wait()
        try:
            started.append(start(fc, root))
        except gr.Error as e:
            refused.append(e.message)
        except BaseException as e:  # noqa: BLE001
            other.append(e)

    threads = [threading.Thread(target=press) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert other == []
    assert len(started) == 1 and len(refused) == n - 1
    assert all("already in progress" in m for m in refused)
    assert training_threads() <= 1
    stop_and_join(fc)
    assert fc.runner.snapshot().job_id == started[0].job_id == 1
    # After it ended a new run may start.
    snap = train_in_app(fc, root)
    assert snap.job_id == 2 and snap.state == "finished"


def test_stop_during_an_epoch(two, tmp_path: Path, gen) -> None:
    """Stop mid-epoch: the run ends promptly as "stopped", saves nothing, the active model is unchanged."""
    fc, a, b, image = two
    root = gen.make_book_dataset(tmp_path / "book", counts=(30, 2, 2))
    active = fc.active.predictor
    files = sorted(p.name for p in fc.checkpoint_dir.iterdir())
    start(fc, root, epochs=1000, batch_size=1)  # 60 batches per epoch
    wait_until(lambda: (p := fc.runner.snapshot().progress) is not None and p.stage == "train" and 5 < p.done < p.total, timeout=60, interval=0.001)
    at_stop = fc.runner.snapshot().progress
    t0 = time.perf_counter()
    assert fc.runner.stop()
    fc.runner.join(timeout=30)
    took = time.perf_counter() - t0
    snap = fc.runner.snapshot()
    assert snap.state == "stopped" and not fc.runner.is_running()
    last = snap.progress
    assert (last.epoch, last.done) <= (at_stop.epoch, at_stop.done + 2)  # at most the batch in flight, then stop
    assert snap.checkpoint is None
    assert sorted(p.name for p in fc.checkpoint_dir.iterdir()) == files
    assert fc.active.predictor is active
    assert not fc.runner.stop()  # nothing left to stop
    print(f"\nstop: run ended {took * 1000:.0f} ms after Stop, at epoch {last.epoch} batch {last.done}/{last.total}")


def test_second_tab_reattaches_to_the_running_job(two, tmp_path: Path, gen) -> None:
    fc, a, b, image = two
    root = gen.make_book_dataset(tmp_path / "book", counts=(6, 2, 2))
    first = start(fc, root, epochs=1000, batch_size=4)
    wait_until(lambda: len(fc.runner.snapshot().history) >= 2, timeout=60)
    # A page opened now (or reloaded) polls the runner and gets the same job with its history so far.
    seen = fc.runner.wait_for_update(-1, timeout=1)
    assert seen.job_id == first.job_id and seen.running and len(seen.history) >= 2
    later = fc.runner.wait_for_update(seen.version, timeout=30)
    assert later.job_id == first.job_id and later.version > seen.version
    assert later.history[: len(seen.history)] == seen.history
    html = webapp.progress_html(later)
    assert "Training" in html or "Evaluating" in html
    stop_and_join(fc)
    final = fc.runner.wait_for_update(later.version, timeout=5)
    assert final.state == "stopped" and final.job_id == first.job_id


# ---------------------------------------------------------------- failing runs


def _raising_train(exc: BaseException):
    def fake(config, dataset, **kwargs):
        yield from ()
        raise exc

    return fake


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TrainingError("loss became nan at epoch 0, batch 0: lower the learning rate (now 0.001)"), "loss became nan"),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "CUDA out of memory"),
        (MemoryError(), "MemoryError"),
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
    ],
    ids=["nan-loss", "cuda-oom", "memory-error", "io-error"],
)
def test_training_that_raises_is_marked_failed_and_the_model_stays(two, tmp_path: Path, gen, monkeypatch, exc, expected) -> None:
    fc, a, b, image = two
    active = fc.active.predictor
    monkeypatch.setattr(jobs, "train", _raising_train(exc))
    snap = train_in_app(fc, gen.make_book_dataset(tmp_path / "book", counts=(3, 1, 1)))
    assert snap.state == "failed" and expected in snap.error
    assert fc.active.predictor is active and training_threads() == 0
    assert "The run failed:" in webapp.progress_html(snap) and "The active model was not changed" in webapp.progress_html(snap)
    assert_still_serving(fc, image, CAT_FISH)


def test_real_nan_loss_fails_the_run(two, tmp_path: Path, gen, monkeypatch) -> None:
    """Not a stand-in: the loss really turns NaN inside fit() (a NaN in the first layer's weights)."""
    fc, a, b, image = two
    active = fc.active.predictor
    real_build = jobs.train.__globals__["build_model"]

    def poisoned(name, n):
        net = real_build(name, n)
        with torch.no_grad():
            net.fc1.weight[0, 0] = float("nan")
        return net

    monkeypatch.setitem(jobs.train.__globals__, "build_model", poisoned)
    snap = train_in_app(fc, gen.make_book_dataset(tmp_path / "book", counts=(3, 1, 1)))
    assert snap.state == "failed" and "loss became nan" in snap.error and "lower the learning rate" in snap.error
    assert fc.active.predictor is active
    assert_still_serving(fc, image, CAT_FISH)


def test_unreadable_training_files_fail_the_run_with_the_reason(two, tmp_path: Path, gen) -> None:
    fc, a, b, image = two
    root = gen.make_book_dataset(tmp_path / "book", counts=(3, 1, 1))
    for p in (root / "train" / "fish").iterdir():
        p.write_bytes(b"damaged")  # every fish training image unreadable
    snap = train_in_app(fc, root)
    assert snap.state == "failed"
    assert snap.error == f"{root}: after skipping unreadable files only one class has training images"
    assert fc.active.predictor.checkpoint.path == a
    assert all(p.read_bytes() == b"damaged" for p in (root / "train" / "fish").iterdir())  # nothing deleted


# ---------------------------------------------------------------- checkpoints/ missing, empty, read-only


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_checkpoints_folder_missing_or_empty(tmp_path: Path, gen, state: str) -> None:
    folder = tmp_path / "checkpoints"
    if state == "empty":
        folder.mkdir()
    fc = webapp.FishcatApp(folder, tmp_path / "data", device="cpu")
    fc.load_initial_model()
    assert fc.active.predictor is None and fc.startup_errors == []
    card = webapp.model_card(fc)
    assert "No model is loaded yet" in card and "Train" in card and "checkpoints/" in card
    assert webapp.checkpoint_choices(fc) == ([], None)
    image = write(tmp_path / "probe.png", encode(picture(), "PNG"))
    gr_message(webapp.predict_api, fc, str(image), match="No model is loaded")
    snap = train_in_app(fc, gen.make_book_dataset(tmp_path / "book", counts=(3, 1, 1)))
    assert snap.state == "finished" and snap.checkpoint.parent == folder  # the folder is created
    assert_still_serving(fc, image, CAT_FISH)


def test_checkpoints_folder_read_only(tmp_path: Path, gen, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start-up, activation and prediction work; a run that cannot save fails with the reason.

    The folder is chmod 555, and since tests may run as root (who may write anyway), writes into it
    are also refused by patching the few places that write there."""
    folder = tmp_path / "checkpoints"
    good = make_checkpoint(folder / "good.pt", ("cat", "fish"))
    leftover = folder / ".good.pt.12345.tmp"
    leftover.write_bytes(b"partial")
    image = write(tmp_path / "probe.png", encode(picture(), "PNG"))
    os.chmod(folder, 0o555)
    try:
        def deny(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

        real_open, real_write_text, real_unlink = builtins.open, Path.write_text, Path.unlink
        inside = lambda p: Path(p).parent == folder  # noqa: E731
        monkeypatch.setattr(ckmod, "open", lambda p, *a, **k: deny(p) if inside(p) and "w" in (a[0] if a else k.get("mode", "r")) else real_open(p, *a, **k), raising=False)
        monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: deny(self) if inside(self) else real_write_text(self, *a, **k))
        monkeypatch.setattr(Path, "unlink", lambda self, *a, **k: deny(self) if inside(self) and self.exists() else real_unlink(self, *a, **k))

        fc = webapp.FishcatApp(folder, tmp_path / "data", device="cpu")
        fc.load_initial_model()  # cannot clean the leftover: not an error
        assert fc.active.predictor.checkpoint.path == good and fc.startup_errors == []
        fc.activate(good)  # cannot remember the choice in .active: not an error
        assert_still_serving(fc, image, CAT_FISH)
        active = fc.active.predictor
        snap = train_in_app(fc, gen.make_book_dataset(tmp_path / "book", counts=(3, 1, 1)))
        assert snap.state == "failed" and "could not save checkpoint: Permission denied" in snap.error
        assert fc.active.predictor is active
        assert sorted(p.name for p in folder.iterdir()) == [".good.pt.12345.tmp", "good.pt"]
        assert_still_serving(fc, image, CAT_FISH)
    finally:
        os.chmod(folder, 0o755)
