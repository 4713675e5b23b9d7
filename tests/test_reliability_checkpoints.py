"""RELIABILITY.md, "Checkpoints" and the checkpoint faults: hostile and broken files, a save killed
half-way, a full disk. Met through the app (FishcatApp, its ActiveModel, the checkpoint list, start-up)
and the CLI. tests/test_checkpoint.py unit-tests the loader itself.

A hostile pickle here would create a marker file if it ever ran; every test asserts it never appears.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import app as webapp
from _reliability import (
    PROJECT,
    assert_one_line_errors,
    assert_still_serving,
    checkpoint_meta,
    encode,
    gr_message,
    make_checkpoint,
    new_app,
    picture,
    run_cli,
    train_in_app,
    write,
)
from fishcat import checkpoint as ckmod
from fishcat import cli
from fishcat.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from fishcat.models import build_model


class Payload:
    """Unpickling this runs exec(): it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def bad_checkpoints(folder: Path, marker: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, regex for the reason)."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, str]] = {}
    torch.save({"format": "fishcat-checkpoint", "model": "simplenet", "x": Payload(marker)}, folder / "code-payload.pt")
    out["code payload (torch.save)"] = (folder / "code-payload.pt", r"refused: it holds Python objects that a weights-only load will not run")
    write(folder / "raw-pickle.pt", pickle.dumps(Payload(marker), protocol=2))
    out["code payload (plain pickle)"] = (folder / "raw-pickle.pt", r"not a usable fishcat checkpoint")
    torch.save(build_model("simplenet", 2), folder / "whole-model.pt")
    out["whole pickled model"] = (folder / "whole-model.pt", r"refused: it holds Python objects")
    data = good.read_bytes()
    out["truncated"] = (write(folder / "truncated.pt", data[: len(data) // 2]), r"not a usable fishcat checkpoint: unreadable")
    out["zero bytes"] = (write(folder / "zero.pt", b""), r"empty file")
    out["text file"] = (write(folder / "notes.pt", b"just text\n"), r"not a usable fishcat checkpoint: unreadable")
    torch.save(build_model("simplenet", 2).state_dict(), folder / "bare-state-dict.pt")
    out["bare state_dict"] = (folder / "bare-state-dict.pt", r"not a fishcat checkpoint \(no 'fishcat-checkpoint' marker\)")

    def variant(name: str, net, meta: dict, state=None) -> Path:
        payload = {"format": "fishcat-checkpoint", "format_version": 1, **meta, "state_dict": state if state is not None else net.state_dict()}
        torch.save(payload, folder / name)
        return folder / name

    out["unknown architecture"] = (variant("resnet.pt", build_model("simplenet", 2), {**checkpoint_meta(("cat", "fish")), "model": "resnet9000"}), r"unknown architecture 'resnet9000'")
    out["wrong architecture"] = (variant("cnn-as-simplenet.pt", build_model("cnn", 2), checkpoint_meta(("cat", "fish"))), r"weights do not fit 'simplenet' with 2 classes")
    out["class count mismatch"] = (variant("3-names-2-outputs.pt", build_model("simplenet", 2), checkpoint_meta(("cat", "fish", "dog"))), r"weights do not fit 'simplenet' with 3 classes")
    nan = build_model("simplenet", 2).state_dict()
    nan["fc2.weight"][0, 0] = float("nan")
    out["NaN weights"] = (variant("nan.pt", None, checkpoint_meta(("cat", "fish")), nan), r"weights contain NaN or infinity \(fc2\.weight\)")
    inf = build_model("simplenet", 2).state_dict()
    inf["fc3.bias"][1] = float("inf")
    out["inf weights"] = (variant("inf.pt", None, checkpoint_meta(("cat", "fish")), inf), r"weights contain NaN or infinity \(fc3\.bias\)")
    out["one class"] = (variant("one-class.pt", build_model("simplenet", 1), checkpoint_meta(("cat",))), r"needs a list of at least 2 class names")
    return out


@pytest.fixture
def setup(tmp_path: Path):
    marker = tmp_path / "PWNED"
    good = make_checkpoint(tmp_path / "app" / "checkpoints" / "good.pt", ("cat", "fish"), seed=2)
    fc = new_app(tmp_path / "app", good)
    image = write(tmp_path / "probe.png", encode(picture(), "PNG"))
    bad = bad_checkpoints(tmp_path / "incoming", marker, good)
    return fc, good, image, marker, bad


def test_every_bad_checkpoint_is_refused_and_the_model_stays(setup) -> None:
    fc, good, image, marker, bad = setup
    active = fc.active.predictor
    answer = webapp.predict_api(fc, str(image))
    for name, (path, reason) in bad.items():
        with pytest.raises(CheckpointError) as info:
            fc.activate(path)
        message = str(info.value)
        assert message.startswith(f"{path.name}: "), name
        assert re.search(reason, message), (name, message)
        assert fc.active.predictor is active, name
        assert webapp.predict_api(fc, str(image)) == answer, name
    assert (fc.checkpoint_dir / ".active").read_text() == "good.pt"  # the remembered choice did not move
    assert not marker.exists()


def test_bad_checkpoints_in_the_folder_are_listed_with_their_reason(setup) -> None:
    fc, good, image, marker, bad = setup
    for path, _ in bad.values():
        os.link(path, fc.checkpoint_dir / path.name)
    choices, active = webapp.checkpoint_choices(fc)
    labels = dict((v, k) for k, v in choices)
    assert active == str(good)
    assert len(labels) == len(bad) + 1
    # Listing reads only the metadata (weights_only as always); files that fail already there carry
    # their reason in the list. Architecture, shape and NaN checks run on activation (test above).
    unreadable = {i.path.name: i.error for i in list_checkpoints(fc.checkpoint_dir) if i.error}
    assert set(unreadable) == {"code-payload.pt", "raw-pickle.pt", "whole-model.pt", "truncated.pt", "zero.pt", "notes.pt", "bare-state-dict.pt"}
    for name, (path, reason) in bad.items():
        if path.name in unreadable:
            label = labels[str(fc.checkpoint_dir / path.name)]
            assert label.startswith(f"{path.name}: ") and re.search(reason, label), label
    assert unreadable["code-payload.pt"].startswith("not a usable fishcat checkpoint: refused")
    assert not marker.exists()
    assert_still_serving(fc, image, {"cat", "fish"})


def test_malicious_checkpoint_at_startup_is_refused_reported_and_the_last_good_one_serves(setup) -> None:
    """The remembered checkpoint (.active) was replaced by a pickle that runs code: start-up refuses it,
    says why (startup_errors, model card, checkpoint list) and serves the last good model."""
    fc, good, image, marker, bad = setup
    evil = fc.checkpoint_dir / "20990101-000000-simplenet.pt"  # newest name, and the one remembered
    evil.write_bytes(bad["code payload (torch.save)"][0].read_bytes())
    (fc.checkpoint_dir / ".active").write_text(evil.name)
    restarted = webapp.FishcatApp(fc.checkpoint_dir, fc.data_dir, device="cpu")
    restarted.load_initial_model()
    assert restarted.active.predictor.checkpoint.path == good
    assert len(restarted.startup_errors) == 1
    assert restarted.startup_errors[0].startswith(f"{evil.name}: not a usable fishcat checkpoint: refused")
    assert "good.pt" in webapp.model_card(restarted)
    choices, _ = webapp.checkpoint_choices(restarted)
    assert any(label.startswith(f"{evil.name}: not a usable fishcat checkpoint: refused") for label, _ in choices)
    assert_still_serving(restarted, image, {"cat", "fish"})
    assert not marker.exists()


def test_only_bad_checkpoints_at_startup_the_app_says_what_to_do(setup) -> None:
    fc, good, image, marker, bad = setup
    folder = fc.checkpoint_dir.parent / "only-bad"
    folder.mkdir()
    for name in ("code payload (torch.save)", "NaN weights", "truncated"):
        os.link(bad[name][0], folder / bad[name][0].name)
    restarted = webapp.FishcatApp(folder, fc.data_dir, device="cpu")
    restarted.load_initial_model()
    assert restarted.active.predictor is None and len(restarted.startup_errors) == 3
    card = webapp.model_card(restarted)
    assert "No model is loaded yet" in card and "Train" in card and "Problems found" in card
    assert "weights contain NaN" in card
    gr_message(webapp.predict_api, restarted, str(image), match=r"^No model is loaded\.$")
    gr_message(webapp.predict_one, restarted, str(image), True, match=r"No model is loaded")
    assert not marker.exists()


def test_cli_refuses_bad_checkpoints_with_one_line(setup, capsys) -> None:
    fc, good, image, marker, bad = setup
    for name, (path, reason) in bad.items():
        assert cli.main(["predict", "--checkpoint", str(path), str(image)]) == 2, name
        captured = capsys.readouterr()
        (line,) = assert_one_line_errors(captured.err, count=1)
        assert line.startswith(f"error: {path.name}: ") and re.search(reason, line), (name, line)
        assert captured.out == ""
    assert not marker.exists()


def test_cli_subprocess_code_payload_is_not_executed(setup) -> None:
    fc, good, image, marker, bad = setup
    path = bad["code payload (torch.save)"][0]
    proc = run_cli("predict", "--checkpoint", str(path), str(image))
    assert proc.returncode == 2
    (line,) = assert_one_line_errors(proc.stderr, count=1)
    assert line == f"error: {path.name}: not a usable fishcat checkpoint: refused: it holds Python objects that a weights-only load will not run"
    assert not marker.exists()


# ---------------------------------------------------------------- killed mid-write, disk full


def test_process_killed_while_writing_a_checkpoint(tmp_path: Path) -> None:
    """A child process overwrites good.pt and is SIGKILLed half-way through torch.save: the old file
    still loads, the temp file it left is removed by the app's start-up."""
    folder = tmp_path / "checkpoints"
    target = make_checkpoint(folder / "model.pt", ("cat", "fish"), seed=4)
    before = target.read_bytes()
    child = textwrap.dedent(
        f"""
        import io, os, sys, time, torch
        from fishcat import checkpoint
        from fishcat.models import build_model
        real_save = torch.save

        def dying_save(obj, f, *args, **kwargs):
            buf = io.BytesIO()
            real_save(obj, buf)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            print("half written", flush=True)
            time.sleep(120)

        torch.save = dying_save
        meta = {checkpoint_meta(("red", "blue"))!r}
        checkpoint.save_checkpoint(build_model("simplenet", 2), meta, {str(target)!r})
        print("finished", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line == "half written\n", proc.stderr.read() if proc.poll() is not None else line
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    temp = folder / f".model.pt.{proc.pid}.tmp"
    assert temp.exists() and 0 < temp.stat().st_size
    assert target.read_bytes() == before  # os.replace never ran
    assert load_checkpoint(target).classes == ["cat", "fish"]
    assert [i.path.name for i in list_checkpoints(folder)] == ["model.pt"]  # the temp file is not offered
    fc = webapp.FishcatApp(folder, tmp_path / "data", device="cpu")
    fc.load_initial_model()  # "restart"
    assert not temp.exists()
    assert fc.active.predictor.classes == ["cat", "fish"] and fc.startup_errors == []
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]


def _full_disk_save(monkeypatch: pytest.MonkeyPatch) -> None:
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[:1000])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckmod.torch, "save", save)


def test_disk_full_while_saving_a_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "checkpoints"
    target = make_checkpoint(folder / "model.pt", ("cat", "fish"), seed=4)
    before = target.read_bytes()
    _full_disk_save(monkeypatch)
    with pytest.raises(CheckpointError, match=r"^model\.pt: could not save checkpoint: No space left on device$"):
        save_checkpoint(build_model("simplenet", 2), checkpoint_meta(("red", "blue")), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]  # no temp file left


def test_disk_full_when_a_training_run_saves(tmp_path: Path, gen, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run finishes training but cannot save: marked failed with the reason; the active model stays."""
    good = make_checkpoint(tmp_path / "app" / "checkpoints" / "good.pt", ("cat", "fish"), seed=2)
    fc = new_app(tmp_path / "app", good)
    image = write(tmp_path / "probe.png", encode(picture(), "PNG"))
    active = fc.active.predictor
    _full_disk_save(monkeypatch)
    snap = train_in_app(fc, gen.make_book_dataset(tmp_path / "book", classes=("red", "blue"), counts=(4, 2, 2)))
    assert snap.state == "failed"
    assert "could not save checkpoint: No space left on device" in snap.error
    assert fc.active.predictor is active
    assert sorted(p.name for p in fc.checkpoint_dir.iterdir()) == [".active", "good.pt"]
    assert "good.pt" in webapp.model_card(fc)
    assert_still_serving(fc, image, {"cat", "fish"})
