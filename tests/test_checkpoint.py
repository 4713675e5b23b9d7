"""Tests for fishcat.checkpoint and fishcat.predict: round trips, safe loading, refusals, Predictor."""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

from fishcat.checkpoint import (
    FORMAT,
    Checkpoint,
    CheckpointError,
    build_metadata,
    clean_temp_files,
    list_checkpoints,
    load_checkpoint,
    read_checkpoint_file,
    save_checkpoint,
)
from fishcat.data import scan_dataset
from fishcat.images import ImageError
from fishcat.models import FEATURES_VERSION, MODELS, build_model
from fishcat.predict import Predictor
from fishcat.train import TrainConfig, TrainResult, train

MODEL_NAMES = list(MODELS)
FROZEN = [n for n in MODEL_NAMES if MODELS[n].frozen_backbone]


def minimal_meta(name: str, classes: list[str]) -> dict:
    return {"model": name, "classes": list(classes), "input_spec": MODELS[name].input_spec.to_dict()}


def fresh_model(name: str, n_classes: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(name, n_classes)
    if name == "cnn":
        # move BatchNorm running statistics away from their defaults: they must round-trip too
        model.train()
        with torch.no_grad():
            model(torch.randn(4, 3, 64, 64) * 3 + 1)
    return model.eval()


def _input(name: str, seed: int = 1) -> torch.Tensor:
    size = MODELS[name].input_spec.size
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def trained(shared_book_data: Path, tmp_path_factory) -> tuple[TrainResult, Path]:
    """A simplenet trained on the cat/fish set, and its checkpoint file (do not modify)."""
    config = TrainConfig(model="simplenet", epochs=5, batch_size=8, lr=0.001, device="cpu")
    *_, result = train(config, scan_dataset(shared_book_data))
    path = tmp_path_factory.mktemp("ckpt") / "simplenet.pt"
    save_checkpoint(result.model, build_metadata(result), path)
    return result, path


def _raw(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _resave(data, path: Path) -> Path:
    torch.save(data, path)
    return path


# ---------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_round_trip_gives_equal_logits(name: str, tmp_path: Path) -> None:
    classes = ["cat", "fish", "bird"]
    model = fresh_model(name, 3)
    path = save_checkpoint(model, minimal_meta(name, classes), tmp_path / "m.pt")
    assert path == tmp_path / "m.pt"
    ckpt = load_checkpoint(path, device="cpu")
    assert isinstance(ckpt, Checkpoint)
    assert ckpt.path == path
    assert ckpt.model_name == name and ckpt.classes == classes
    assert ckpt.input_spec == MODELS[name].input_spec
    assert ckpt.device == torch.device("cpu")
    assert not ckpt.model.training
    assert "state_dict" not in ckpt.meta and ckpt.meta["format"] == FORMAT
    x = _input(name)
    with torch.no_grad():
        assert torch.equal(model(x), ckpt.model(x))
    saved = model.state_dict()
    for k, v in ckpt.model.state_dict().items():
        assert torch.equal(v, saved[k]), k


def test_checkpoint_holds_only_plain_types_and_tensors(trained) -> None:
    result, path = trained
    data = _raw(path)  # would raise if anything but plain types and tensors were pickled

    def walk(obj, where: str) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                assert isinstance(k, str), f"{where}: key {k!r}"
                walk(v, f"{where}.{k}")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{where}[{i}]")
        else:
            assert obj is None or isinstance(obj, (str, int, float, bool, torch.Tensor)), f"{where}: {type(obj)}"

    walk(data, "checkpoint")
    assert data["format"] == FORMAT and data["format_version"] == 1
    assert data["model"] == "simplenet" and data["classes"] == ["cat", "fish"]
    assert set(data["state_dict"]) == set(result.model.state_dict())
    assert len(data["metrics"]["history"]) == 5
    assert data["metrics"]["test"]["n"] == 8
    assert data["config"]["model"] == "simplenet"
    assert data["data"]["counts"]["train"] == {"cat": 12, "fish": 12}


@pytest.mark.parametrize("name", FROZEN)
def test_frozen_backbone_checkpoint_stores_only_the_head(name: str, tmp_path: Path) -> None:
    path = save_checkpoint(fresh_model(name, 2), minimal_meta(name, ["a", "b"]), tmp_path / "m.pt")
    assert path.stat().st_size < 50_000, "the backbone weights were saved"
    state = _raw(path)["state_dict"]
    assert state and not any(k.startswith("backbone.") for k in state)


# ---------------------------------------------------------------- atomic writes


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    meta = minimal_meta("simplenet", ["a", "b"])
    save_checkpoint(fresh_model("simplenet", 2, seed=1), meta, tmp_path / "m.pt")
    save_checkpoint(fresh_model("simplenet", 2, seed=2), meta, tmp_path / "m.pt")  # overwrite
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    # the second save won
    expected = fresh_model("simplenet", 2, seed=2).state_dict()
    assert torch.equal(_raw(tmp_path / "m.pt")["state_dict"]["fc1.weight"], expected["fc1.weight"])
    # and it creates missing parent folders
    save_checkpoint(fresh_model("simplenet", 2), meta, tmp_path / "new" / "dir" / "m.pt")
    assert [p.name for p in (tmp_path / "new" / "dir").iterdir()] == ["m.pt"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_save_keeps_the_old_file_and_no_temp_file(tmp_path: Path, monkeypatch, error) -> None:
    meta = minimal_meta("simplenet", ["a", "b"])
    path = save_checkpoint(fresh_model("simplenet", 2), meta, tmp_path / "m.pt")
    before = path.read_bytes()
    real_save = torch.save

    def failing_save(obj, f, *a, **kw):
        real_save(obj, f, *a, **kw)  # write (part of) the data, then fail like a full disk
        raise error

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises((CheckpointError, KeyboardInterrupt)) as info:
        save_checkpoint(fresh_model("simplenet", 2, seed=5), meta, path)
    if isinstance(error, OSError):
        assert info.type is CheckpointError and "could not save" in str(info.value)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    assert path.read_bytes() == before
    load_checkpoint(path, device="cpu")


def test_clean_temp_files(tmp_path: Path) -> None:
    leftovers = [".x.pt.123.tmp", ".20240101-simplenet.pt.99999.tmp"]
    keep = ["x.pt", ".x.pt.tmp", "x.pt.123.tmp", ".x.pt.abc.tmp", "notes.tmp", ".hidden", "x.pt.123"]
    for name in leftovers + keep:
        (tmp_path / name).write_bytes(b"data")
    (tmp_path / ".dir.pt.1.tmp").mkdir()  # a folder is never removed
    removed = clean_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == sorted(leftovers)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep + [".dir.pt.1.tmp"])
    assert clean_temp_files(tmp_path / "missing") == []


# ---------------------------------------------------------------- refusals


def _refused(path: Path, match: str | None = None) -> CheckpointError:
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, device="cpu")
    assert str(info.value).startswith(path.name + ":")
    assert "\n" not in str(info.value)
    return info.value


def test_refuses_missing_file(tmp_path: Path) -> None:
    _refused(tmp_path / "nope.pt", "not found")


def test_refuses_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "z.pt").write_bytes(b"")
    _refused(tmp_path / "z.pt", "empty")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
def test_refuses_truncated_file(trained, tmp_path: Path, fraction: float) -> None:
    data = trained[1].read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: int(len(data) * fraction)])
    _refused(tmp_path / "t.pt")


def test_refuses_garbage_text(tmp_path: Path) -> None:
    (tmp_path / "g.pt").write_text("hello, I am not a checkpoint\n" * 20)
    _refused(tmp_path / "g.pt", "not a usable")


class CodePayload:
    """Unpickling this would create `marker` (stands in for any code an attacker runs)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_refuses_a_pickle_with_a_code_payload(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"format": FORMAT, "model": "simplenet", "evil": CodePayload(marker)}
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    assert not marker.exists()
    err = _refused(path, "refused")
    assert not marker.exists(), "loading the checkpoint ran code from the pickle"
    assert "weights-only" in str(err)


def test_refuses_a_whole_pickled_model(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(build_model("simplenet", 2), path)
    _refused(path, "refused")


def test_refuses_other_plain_files(tmp_path: Path) -> None:
    _refused(_resave([1, 2, 3], tmp_path / "list.pt"), "not a fishcat checkpoint")
    _refused(_resave({"state_dict": {}}, tmp_path / "dict.pt"), "not a fishcat checkpoint")
    # a bare state_dict (what most PyTorch tutorials save)
    _refused(_resave(build_model("simplenet", 2).state_dict(), tmp_path / "sd.pt"), "not a fishcat checkpoint")


def _edited(trained, tmp_path: Path, edit) -> Path:
    data = _raw(trained[1])
    edit(data)
    return _resave(data, tmp_path / "edited.pt")


def test_refuses_unknown_architecture(trained, tmp_path: Path) -> None:
    _refused(_edited(trained, tmp_path, lambda d: d.update(model="resnet50")), "unknown architecture")
    _refused(_edited(trained, tmp_path, lambda d: d.pop("model")), "unknown architecture")


def test_refuses_weights_of_another_architecture(trained, tmp_path: Path) -> None:
    _refused(_edited(trained, tmp_path, lambda d: d.update(model="cnn")), "do not fit")


def test_refuses_class_count_mismatch(trained, tmp_path: Path) -> None:
    _refused(_edited(trained, tmp_path, lambda d: d.update(classes=["cat", "fish", "dog"])), "do not fit 'simplenet' with 3 classes")


@pytest.mark.parametrize("name", FROZEN)
def test_refuses_class_count_mismatch_frozen(name: str, tmp_path: Path) -> None:
    path = save_checkpoint(fresh_model(name, 2), minimal_meta(name, ["a", "b"]), tmp_path / "m.pt")
    data = _raw(path)
    data["classes"] = ["a", "b", "c"]
    _refused(_resave(data, tmp_path / "m3.pt"), "do not fit")
    data = _raw(path)
    data["state_dict"]["head.9.weight"] = torch.zeros(1)
    _refused(_resave(data, tmp_path / "extra.pt"), "do not fit")
    data = _raw(path)
    del data["state_dict"]["head.1.bias"]
    _refused(_resave(data, tmp_path / "missing.pt"), "do not fit")


def test_refuses_bad_class_lists(trained, tmp_path: Path) -> None:
    _refused(_edited(trained, tmp_path, lambda d: d.update(classes="cat,fish")), "class names")
    _refused(_edited(trained, tmp_path, lambda d: d.update(classes=["cat"])), "class names")
    _refused(_edited(trained, tmp_path, lambda d: d.update(classes=["cat", 7])), "class names")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_refuses_nan_weights(trained, tmp_path: Path, bad: float) -> None:
    def poison(d):
        d["state_dict"]["fc2.weight"][3, 4] = bad

    _refused(_edited(trained, tmp_path, poison), "NaN or infinity")


def test_refuses_missing_or_wrong_input_spec(trained, tmp_path: Path) -> None:
    _refused(_edited(trained, tmp_path, lambda d: d.pop("input_spec")), "input_spec")

    def bigger(d):
        d["input_spec"]["size"] = 128

    _refused(_edited(trained, tmp_path, bigger), "input_spec")


def test_refuses_non_tensor_state(trained, tmp_path: Path) -> None:
    def listify(d):
        d["state_dict"]["fc1.bias"] = d["state_dict"]["fc1.bias"].tolist()

    _refused(_edited(trained, tmp_path, listify), "state_dict")


def test_list_checkpoints_marks_unusable_files(trained, tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    good.write_bytes(trained[1].read_bytes())
    (tmp_path / "bad.pt").write_text("garbage")
    (tmp_path / ".good.pt.1.tmp").write_bytes(b"x")
    infos = {i.path.name: i for i in list_checkpoints(tmp_path)}
    assert set(infos) == {"good.pt", "bad.pt"}
    assert infos["good.pt"].error is None
    assert infos["good.pt"].model == "simplenet" and infos["good.pt"].classes == ("cat", "fish")
    assert infos["good.pt"].test_accuracy == pytest.approx(trained[0].test.accuracy)
    assert infos["bad.pt"].error and "bad.pt" in infos["bad.pt"].label()
    assert read_checkpoint_file(good)["model"] == "simplenet"


# ---------------------------------------------------------------- Predictor


@pytest.fixture(scope="module")
def predictor(trained) -> Predictor:
    return Predictor.from_path(trained[1], device="cpu")


def _check(pred, classes: list[str], spec_size: int, size: tuple[int, int]) -> None:
    assert list(pred.probabilities) == classes
    assert all(0 <= p <= 1 for p in pred.probabilities.values())
    assert math.isclose(sum(pred.probabilities.values()), 1.0, abs_tol=1e-5)
    assert pred.label in classes
    assert pred.confidence == max(pred.probabilities.values())
    assert pred.seen.size == (spec_size, spec_size) and pred.seen.mode == "RGB"
    assert pred.size == size


def test_predictor_on_files_bytes_and_images(predictor: Predictor, gen, tmp_path: Path) -> None:
    cat = gen.colour_image(gen.colours["cat"], 4242, size=(50, 35))
    fish = gen.colour_image(gen.colours["fish"], 4243, size=(50, 35))
    path = tmp_path / "cat.jpg"
    cat.save(path)
    for source in (path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes()), cat):
        pred = predictor.predict(source)
        _check(pred, ["cat", "fish"], 64, (50, 35))
        assert pred.box == (0, 0, 50, 35) and not pred.trimmed
        assert pred.label == "cat"
    assert predictor.predict(fish).label == "fish"


def test_predictor_accepts_rgba(predictor: Predictor, gen, tmp_path: Path) -> None:
    rgba = gen.colour_image(gen.colours["fish"], 7, mode="RGBA")
    assert rgba.mode == "RGBA"
    _check(predictor.predict(rgba), ["cat", "fish"], 64, rgba.size)
    path = tmp_path / "fish.png"
    rgba.save(path)
    pred = predictor.predict(path)
    _check(pred, ["cat", "fish"], 64, rgba.size)
    assert pred.label == "fish"


def test_predictor_with_trim(predictor: Predictor, gen) -> None:
    # a "screenshot": the picture in the middle of a flat grey window
    shot = Image.new("RGB", (400, 300), (236, 236, 236))
    shot.paste(gen.colour_image(gen.colours["cat"], 3, size=(160, 120)), (120, 90))
    pred = predictor.predict(shot, trim=True)
    _check(pred, ["cat", "fish"], 64, (400, 300))
    x0, y0, x1, y1 = pred.box
    assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 300
    assert pred.label == "cat"


def test_predictor_rejects_non_images(predictor: Predictor, tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("text")
    with pytest.raises(ImageError, match="notes.png"):
        predictor.predict(bad)


def test_probabilities_batch(predictor: Predictor) -> None:
    probs = predictor.probabilities(torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8))
    assert probs.shape == (3, 2)
    assert torch.allclose(probs.sum(1), torch.ones(3))


@pytest.mark.parametrize("name", FROZEN)
def test_predictor_for_a_frozen_backbone_model(name: str, tmp_path: Path, gen) -> None:
    path = save_checkpoint(fresh_model(name, 2), minimal_meta(name, ["cat", "fish"]), tmp_path / "m.pt")
    predictor = Predictor.from_path(path, device="cpu")
    size = MODELS[name].input_spec.size
    with Image.open(gen.cat_photo) as im:
        expected_size = im.size
    _check(predictor.predict(gen.cat_photo), ["cat", "fish"], size, expected_size)


@pytest.mark.parametrize("name", FROZEN)
def test_refuses_a_head_trained_on_other_backbone_features(name: str, tmp_path: Path) -> None:
    path = save_checkpoint(fresh_model(name, 2), minimal_meta(name, ["a", "b"]), tmp_path / "m.pt")
    assert _raw(path)["features_version"] == FEATURES_VERSION
    data = _raw(path)
    data["features_version"] = FEATURES_VERSION - 1
    _refused(_resave(data, tmp_path / "old.pt"), "features differ")
    data.pop("features_version")
    _refused(_resave(data, tmp_path / "older.pt"), "train it again")
