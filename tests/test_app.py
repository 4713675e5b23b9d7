"""The app's handlers, tab by tab, without a server: app.py's module-level functions called the way
the Gradio events call them, on a FishcatApp with a temp copy of checkpoints/default.pt and a temp
data folder (the repo's checkpoints/ and data/ are never written). Training uses simplenet on a
tiny generated data set, so a run takes a second or two on a CPU.
"""

from __future__ import annotations

import math
import threading
import zipfile
from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

import app as fapp
from _app_support import (
    CHELSEA,
    SCREENSHOT_CAT,
    checkpoint_dir,
    make_corrupt_dataset,
    make_dataset,
    rgba_screenshot,
    zip_folder,
)
from fishcat.checkpoint import CheckpointError, list_checkpoints
from fishcat.jobs import THREAD_NAME, JobSnapshot
from fishcat.predict import UNSURE_BELOW, Prediction, Predictor
from fishcat.train import EpochStats, Progress, TrainConfig

JOIN_S = 120  # generous: the test machine may be busy


@pytest.fixture(scope="module")
def default_predictor(tmp_path_factory) -> Predictor:
    """The shipped default model, loaded once for the module (loading EfficientNet takes seconds)."""
    ck = checkpoint_dir(tmp_path_factory.mktemp("shipped"))
    return Predictor.from_path(ck / "default.pt", "cpu")


@pytest.fixture
def fa(tmp_path, default_predictor):
    """A FishcatApp on temp folders whose active model is the default (shared, read-only predictor)."""
    app = fapp.FishcatApp(checkpoint_dir(tmp_path), tmp_path / "data", device="cpu")
    app.active.predictor = default_predictor
    yield app
    app.runner.stop()
    app.runner.join(JOIN_S)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny cat/fish data set (book layout, 8/3/3 per class); tests must not modify it."""
    return make_dataset(tmp_path_factory.mktemp("tiny") / "catfish")


def train(fa, folder: Path, model: str = "simplenet", epochs: int = 2, batch: int = 8) -> JobSnapshot:
    snap, root = fapp.start_training(fa, fapp.FOLDER, str(folder), None, None, model, epochs, 0.001, batch, 0)
    assert root == str(folder)
    assert snap.state == "preparing"
    fa.runner.join(JOIN_S)
    assert not fa.runner.is_running(), "training did not end in time"
    return fa.runner.snapshot()


def assert_distribution(probs: dict[str, float], classes=("cat", "fish")) -> None:
    assert set(probs) == set(classes)
    assert all(0.0 <= p <= 1.0 for p in probs.values())
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-4)


# --------------------------------------------------------------------------------------------------
# Predict tab
# --------------------------------------------------------------------------------------------------


def test_predict_one_rgba_screenshot(fa):
    assert Image.open(SCREENSHOT_CAT).mode == "RGBA"
    probs, verdict, seen, trim_view, note = fapp.predict_one(fa, str(SCREENSHOT_CAT), True)
    assert_distribution(probs)
    assert max(probs, key=probs.get) == "cat"
    assert "cat" in verdict
    assert seen.size == (224, 224)
    assert isinstance(trim_view, Image.Image) and max(trim_view.size) <= 640
    assert "Answered by" in note and "default.pt" in note
    assert "Trim found no borders" not in note  # the screenshot's chrome was cut away


def test_predict_one_without_trim_and_empty(fa, tmp_path):
    shot = rgba_screenshot(tmp_path / "transparent.png")
    probs, verdict, seen, trim_view, note = fapp.predict_one(fa, str(shot), False)
    assert_distribution(probs)
    assert trim_view is None and seen.size == (224, 224)
    # nothing dropped (the image was cleared): everything empty, the model card stays
    assert fapp.predict_one(fa, None, True)[:4] == (None, "", None, None)


def test_predict_photo_without_chrome_says_so(fa):
    probs, verdict, _, _, note = fapp.predict_one(fa, str(CHELSEA), True)
    assert max(probs, key=probs.get) == "cat"
    assert "Trim found no borders" in note


def test_not_sure_below_threshold(fa, monkeypatch):
    unsure = Prediction({"cat": 0.55, "fish": 0.45}, seen=Image.new("RGB", (64, 64)), box=(0, 0, 40, 30), size=(40, 30), image=Image.new("RGB", (40, 30)))
    assert not unsure.sure and 0.55 < UNSURE_BELOW
    text = fapp.verdict(unsure)
    assert text.startswith("## Not sure: maybe cat (55%)") and "fish" in text and f"{UNSURE_BELOW:.0%}" in text
    sure = Prediction({"cat": 0.9, "fish": 0.1}, seen=unsure.seen, box=unsure.box, size=unsure.size, image=unsure.image)
    assert fapp.verdict(sure) == "## cat (90%)"

    class Stub:  # a predictor that is never sure, so the handler's wording is checked end to end
        checkpoint = fa.active.predictor.checkpoint

        def predict(self, path, trim=False):
            return unsure

    monkeypatch.setattr(fa.active, "predictor", Stub())
    _, verdict, _, _, _ = fapp.predict_one(fa, str(CHELSEA), False)
    assert "Not sure" in verdict
    [(thumb, caption)] = fapp.predict_many(fa, [str(CHELSEA)], False)
    assert caption == "cat 55% (not sure): scikit-image__chelsea.png"


def test_non_image_upload_names_the_file(fa, tmp_path):
    text = tmp_path / "holiday-notes.png"
    text.write_text("this is not a picture\n" * 10)
    with pytest.raises(gr.Error, match="holiday-notes.png"):
        fapp.predict_one(fa, str(text), True)
    with pytest.raises(gr.Error, match="holiday-notes.png"):
        fapp.predict_api(fa, str(text))


def test_predict_api(fa):
    probs = fapp.predict_api(fa, str(SCREENSHOT_CAT))
    assert_distribution(probs)
    assert isinstance(probs["cat"], float)
    with pytest.raises(gr.Error, match="No image"):
        fapp.predict_api(fa, None)


def test_predict_many_mixes_good_and_bad(fa, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)  # a JPEG that stops after its signature
    items = fapp.predict_many(fa, [str(CHELSEA), str(bad), str(SCREENSHOT_CAT)], True)
    assert len(items) == 3
    assert items[0][1].endswith(": scikit-image__chelsea.png") and items[0][1].startswith("cat ")
    assert items[1][1].startswith("error: ") and "broken.jpg" in items[1][1]
    assert items[2][1].endswith(": screenshot-cat.png")
    assert all(max(img.size) <= 320 for img, _ in items)
    assert fapp.predict_many(fa, [], True) == []


def test_without_a_model(tmp_path):
    empty = tmp_path / "no-checkpoints"
    empty.mkdir()
    (empty / "broken.pt").write_bytes(b"not a checkpoint")
    app = fapp.FishcatApp(empty, tmp_path / "data", device="cpu")
    app.load_initial_model()
    assert app.active.predictor is None
    card = fapp.model_card(app)
    assert "No model is loaded yet" in card and "broken.pt" in card
    with pytest.raises(gr.Error, match="No model"):
        fapp.predict_one(app, str(CHELSEA), True)
    with pytest.raises(gr.Error, match="No model"):
        fapp.predict_api(app, str(CHELSEA))
    with pytest.raises(gr.Error, match="No model"):
        fapp.predict_many(app, [str(CHELSEA)], True)
    choices, active = fapp.checkpoint_choices(app)
    assert active is None and len(choices) == 1 and "broken.pt" in choices[0][0]


# --------------------------------------------------------------------------------------------------
# Train tab: data
# --------------------------------------------------------------------------------------------------


def test_check_data_folder(fa, tiny):
    summary, thumbs, root, corrupt, button = fapp.check_data(fa, fapp.FOLDER, f"  {tiny}  ", None, None, 0)
    assert root == str(tiny)
    assert "**cat**" in summary and "**fish**" in summary
    assert "| train | 8 | 8 | 16 |" in summary and "| test | 3 | 3 | 6 |" in summary
    assert "every image decodes" in summary
    assert corrupt == [] and button["visible"] is False
    assert [c for _, c in thumbs] == ["cat"] * 4 + ["fish"] * 4


def test_check_data_errors(fa, tmp_path):
    with pytest.raises(gr.Error, match="Type the path"):
        fapp.check_data(fa, fapp.FOLDER, "   ", None, None, 0)
    with pytest.raises(gr.Error, match="folder not found"):
        fapp.check_data(fa, fapp.FOLDER, str(tmp_path / "nowhere"), None, None, 0)
    with pytest.raises(gr.Error, match="Upload a .zip"):
        fapp.check_data(fa, fapp.ZIP, "", None, None, 0)


def test_check_data_finds_and_quarantines_corrupt_files(fa, tmp_path):
    ds = make_dataset(tmp_path / "ds")
    bad_text = ds / "train" / "cat" / "notes.png"
    bad_text.write_text("not a picture")
    bad_jpeg = ds / "val" / "fish" / "cut.jpg"
    bad_jpeg.write_bytes((ds / "val" / "fish" / "fish_001.jpg").read_bytes()[:200])
    summary, _, root, corrupt, button = fapp.check_data(fa, fapp.FOLDER, str(ds), None, None, 0)
    assert sorted(Path(p).name for p in corrupt) == ["cut.jpg", "notes.png"]
    assert "2 file(s) are not readable images" in summary
    assert button["visible"] is True
    left, button = fapp.quarantine_files(root, corrupt)
    assert left == [] and button["visible"] is False
    assert not bad_text.exists() and not bad_jpeg.exists()
    assert (ds / ".quarantine" / "train" / "cat" / "notes.png").read_text() == "not a picture"  # moved, not deleted
    assert (ds / ".quarantine" / "val" / "fish" / "cut.jpg").is_file()
    summary, _, _, corrupt, _ = fapp.check_data(fa, fapp.FOLDER, str(ds), None, root, 0)
    assert corrupt == [] and "every image decodes" in summary
    with pytest.raises(gr.Error, match="Nothing to move"):
        fapp.quarantine_files(root, [])


def test_check_builtin_data_offers_no_quarantine(fa):
    summary, thumbs, root, corrupt, button = fapp.check_data(fa, fapp.BUILTIN, "", None, None, 0)
    assert Path(root) == fapp.paths.DEFAULT_DATA
    assert "**cat**" in summary and thumbs
    assert button["visible"] is False


def test_import_zip(fa, tmp_path, tiny):
    upload = zip_folder(tiny, tmp_path / "my pets!.zip", prefix="catfish/")  # one top folder, as zips often have
    root = fa.import_zip(str(upload))
    assert root.name == "catfish" and (root / "train" / "cat").is_dir()
    assert root.is_relative_to(fa.data_dir / "datasets")
    # the Train tab's way: the upload is imported, and the extracted folder is remembered
    summary, _, current, _, _ = fapp.check_data(fa, fapp.ZIP, "", str(upload), None, 0)
    assert Path(current).is_relative_to(fa.data_dir / "datasets") and "| train | 8 | 8 | 16 |" in summary


def test_malicious_zip_is_refused(fa, tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("train/cat/ok.png", b"x")
        zf.writestr("../../escaped.txt", b"gotcha")
    with pytest.raises(fapp.ArchiveError, match=r"\.\."):
        fa.import_zip(str(evil))
    with pytest.raises(gr.Error, match=r"evil.*\.\."):
        fapp.check_data(fa, fapp.ZIP, "", str(evil), None, 0)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not [p for p in fa.data_dir.rglob("*") if p.is_file()]  # nothing extracted, no copy of the upload kept


# --------------------------------------------------------------------------------------------------
# Train tab: runs
# --------------------------------------------------------------------------------------------------


def test_progress_html_before_and_during_a_run():
    assert "No training run yet" in fapp.progress_html(None)
    cfg = TrainConfig(model="simplenet", epochs=3)
    snap = JobSnapshot(1, "preparing", cfg, "/data/x<y>", ("cat", "fish"), progress=Progress("decode", 5, 20), started=1.0)
    html = fapp.progress_html(snap)
    assert "Preparing: decoding images" in html and "5/20" in html and "x&lt;y&gt;" in html
    stats = EpochStats(0, 3, 0.7, 0.5, 0.6, 0.55, 0.1)
    snap = JobSnapshot(1, "training", cfg, "/d", ("cat", "fish"), history=(stats,), progress=Progress("train", 1, 4, 1), started=1.0)
    html = fapp.progress_html(snap)
    assert "Training: epoch 2/3, batch 1/4" in html
    assert "Last epoch: training loss 0.700" in html and "validation accuracy 55.0%" in html
    assert fapp.results_markdown(snap) == "" and fapp.wrong_gallery(snap) == []


def test_training_run_activates_and_lists_the_new_checkpoint(fa, tiny):
    default_path = fa.checkpoint_dir / "default.pt"
    snap = train(fa, tiny, epochs=2)
    assert snap.state == "finished", snap.error
    assert [h.epoch for h in snap.history] == [0, 1]
    assert snap.checkpoint is not None and snap.checkpoint.parent == fa.checkpoint_dir and snap.checkpoint.is_file()
    # the new checkpoint answers predictions now
    assert fa.active.predictor.checkpoint.path == snap.checkpoint
    assert "simplenet" in fapp.model_card(fa) and snap.checkpoint.name in fapp.model_card(fa)
    red = fapp.predict_api(fa, str(rgba_screenshot(fa.data_dir.parent / "red.png")))
    assert_distribution(red)
    assert (fa.checkpoint_dir / ".active").read_text() == snap.checkpoint.name
    # the page shows it
    html = fapp.progress_html(snap)
    assert "Finished" in html and "Last epoch" in html and "failed" not in html
    md = fapp.results_markdown(snap)
    assert snap.checkpoint.name in md and "now the active model" in md and "Test accuracy" in md
    assert "| cat |" in md and "| fish |" in md
    wrong = fapp.wrong_gallery(snap)
    assert len(wrong) == len(snap.result.wrong_test_images())
    assert all(" → " in caption and caption.endswith("%") for _, caption in wrong)
    choices, active = fapp.checkpoint_choices(fa)
    assert active == str(snap.checkpoint)
    labels = dict((v, k) for k, v in choices)
    assert set(labels) == {str(snap.checkpoint), str(default_path)}
    assert labels[str(snap.checkpoint)].startswith("● ") and not labels[str(default_path)].startswith("● ")
    # switch back to the shipped default, as the Models accordion does
    fa.activate(default_path)
    assert "default.pt" in fapp.model_card(fa) and "efficientnet-lite0" in fapp.model_card(fa)
    choices, active = fapp.checkpoint_choices(fa)
    assert active == str(default_path)
    assert dict((v, k) for k, v in choices)[str(default_path)].startswith("● ")
    assert (fa.checkpoint_dir / ".active").read_text() == "default.pt"
    assert_distribution(fapp.predict_api(fa, str(SCREENSHOT_CAT)))


def test_restart_remembers_the_active_checkpoint(fa, tiny):
    snap = train(fa, tiny, epochs=1)
    assert snap.state == "finished", snap.error
    again = fapp.FishcatApp(fa.checkpoint_dir, fa.data_dir, device="cpu")
    again.load_initial_model()
    assert again.active.predictor.checkpoint.path == snap.checkpoint and again.startup_errors == []


def test_bad_checkpoint_does_not_replace_the_active_model(fa):
    before = fa.active.predictor
    broken = fa.checkpoint_dir / "broken.pt"
    broken.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="broken.pt"):
        fa.activate(broken)
    assert fa.active.predictor is before
    labels = [label for label, _ in fapp.checkpoint_choices(fa)[0]]
    assert any(label.startswith("broken.pt: ") for label in labels)


def test_failed_run_keeps_the_active_model_and_says_why(fa, tmp_path):
    before = fa.active.predictor
    ckpts_before = {c.path for c in list_checkpoints(fa.checkpoint_dir)}
    snap = train(fa, make_corrupt_dataset(tmp_path / "all-corrupt"))
    assert snap.state == "failed"
    assert "no readable training images" in snap.error
    assert fa.active.predictor is before
    assert {c.path for c in list_checkpoints(fa.checkpoint_dir)} == ckpts_before
    html = fapp.progress_html(snap)
    assert "Failed" in html and "The run failed" in html and "no readable training images" in html
    assert "The active model was not changed" in html
    assert fapp.results_markdown(snap) == ""
    assert not (fa.checkpoint_dir / ".active").exists()


def test_second_start_while_running_is_refused_then_stop(fa, tmp_path):
    big = make_dataset(tmp_path / "big", counts=(30, 3, 3))
    before = fa.active.predictor
    snap, _ = fapp.start_training(fa, fapp.FOLDER, str(big), None, None, "simplenet", 1000, 0.001, 1, 0)
    try:
        assert snap.running
        with pytest.raises(gr.Error, match="in progress"):
            fapp.start_training(fa, fapp.FOLDER, str(big), None, None, "simplenet", 2, 0.001, 8, 0)
        with pytest.raises(gr.Error, match="in progress"):
            fapp.start_training(fa, fapp.BUILTIN, "", None, None, "cnn", 2, 0.001, 8, 0)
        assert [t.name for t in threading.enumerate()].count(THREAD_NAME) == 1
        fa.runner.wait_for_update(fa.runner.snapshot().version, timeout=JOIN_S)  # it makes progress
    finally:
        assert fa.runner.stop()
        fa.runner.join(JOIN_S)
    snap = fa.runner.snapshot()
    assert snap.state == "stopped" and len(snap.history) < 1000
    assert "Stopped" in fapp.progress_html(snap)
    assert fapp.results_markdown(snap).startswith(f"Stopped after {len(snap.history)} of 1000 epochs")
    assert fa.active.predictor is before
    assert not fa.runner.stop()  # nothing left to stop


def test_bad_settings_are_refused_before_starting(fa, tiny):
    with pytest.raises(gr.Error, match="Training settings: epochs"):
        fapp.start_training(fa, fapp.FOLDER, str(tiny), None, None, "simplenet", 0, 0.001, 8, 0)
    with pytest.raises(gr.Error, match="learning rate"):
        fapp.start_training(fa, fapp.FOLDER, str(tiny), None, None, "simplenet", 2, -1, 8, 0)
    with pytest.raises(gr.Error, match="Training settings"):
        fapp.start_training(fa, fapp.FOLDER, str(tiny), None, None, "simplenet", None, 0.001, 8, 0)
    assert fa.runner.snapshot() is None


@pytest.mark.parametrize("model", list(fapp.MODELS))
def test_under_the_hood(model):
    md = fapp.under_the_hood(model, 20, 0.001, 64, 0)
    assert md.startswith(f"### {model}") and "**Parameters:**" in md and "**Preprocessing**" in md
    assert f"model={model}" in md and "epochs=20" in md
    assert "error" in fapp.under_the_hood(model, 0, 0.001, 64, 0)
    assert fapp.under_the_hood("no-such-model", 20, 0.001, 64, 0) == ""


def test_ui_builds_with_the_named_endpoints(fa):
    demo = fapp.build_ui(fa)
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"predict", "classify", "train", "stop"} <= names


def test_model_list_describes_every_registry_model_and_marks_the_choice() -> None:
    from fishcat.models import MODELS

    text = fapp.model_list("cnn")
    lines = text.splitlines()
    assert len(lines) == len(MODELS)
    for name, info in MODELS.items():
        assert any(name in line and info.description in line for line in lines)
    assert [line for line in lines if line.startswith("- **")] == [f"- **cnn: {MODELS['cnn'].description}**"]
