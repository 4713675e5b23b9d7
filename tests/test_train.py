"""Tests for fishcat.train on tiny generated data sets (CPU, a few seconds each at most)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import fishcat.train as train_mod
from fishcat.data import scan_dataset
from fishcat.models import MODELS
from fishcat.preprocess import load_for_model
from fishcat.train import (
    EpochStats,
    Evaluation,
    Progress,
    TensorData,
    TrainConfig,
    TrainingError,
    TrainResult,
    evaluate,
    fit,
    train,
)


def cfg(model: str = "simplenet", **kw) -> TrainConfig:
    kw.setdefault("epochs", 3)
    kw.setdefault("batch_size", 8)
    kw.setdefault("lr", 0.001)
    return TrainConfig(model=model, device="cpu", **kw)


def run(config: TrainConfig, dataset, **kw) -> tuple[list[EpochStats], TrainResult]:
    events = list(train(config, dataset, **kw))
    *history, result = events
    assert isinstance(result, TrainResult)
    assert all(isinstance(e, EpochStats) for e in history)
    assert history == result.history
    return history, result


def _numbers(h: EpochStats) -> tuple:
    return (h.epoch, h.train_loss, h.train_acc, h.val_loss, h.val_acc)


@pytest.fixture(scope="module")
def dataset(shared_book_data: Path):
    return scan_dataset(shared_book_data)


class CountCalls:
    """Wraps a function and counts its calls (for monkeypatching)."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


# ---------------------------------------------------------------- config


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig(model="nope")
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="batch size"):
        TrainConfig(batch_size=0)
    for lr in (0, -1, 1e6, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="learning rate"):
            TrainConfig(lr=lr)


# ---------------------------------------------------------------- fit / train basics


def test_fit_yields_one_epochstats_per_epoch(dataset) -> None:
    progress: list[Progress] = []
    history, result = run(cfg(epochs=3), dataset, on_progress=progress.append)
    assert [h.epoch for h in history] == [0, 1, 2]
    for h in history:
        assert h.epochs == 3
        for v in (h.train_loss, h.train_acc, h.val_loss, h.val_acc, h.seconds):
            assert isinstance(v, float) and math.isfinite(v), h
        assert 0 <= h.train_acc <= 1 and 0 <= h.val_acc <= 1
        assert h.train_loss >= 0 and h.val_loss >= 0 and h.seconds >= 0
    assert not result.stopped
    assert result.model_name == "simplenet" and result.classes == ["cat", "fish"]
    assert result.input_spec == MODELS["simplenet"].input_spec
    assert result.skipped == []
    assert result.test is not None and result.test.n == 8
    assert len(result.test_samples) == 8
    assert not result.model.training
    stages = {p.stage for p in progress}
    assert {"decode", "train", "evaluate"} <= stages
    first = next(p for p in progress if p.stage == "train")
    assert (first.done, first.total, first.epoch) == (0, 3, 0)  # "training has begun", before the first batch
    train_steps = [p for p in progress if p.stage == "train" and p.done > 0]
    assert len(train_steps) == 3 * 3  # 24 images / batch 8 = 3 batches, 3 epochs
    assert [p.epoch for p in train_steps] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


class Recorder(nn.Module):
    """Feature x = sample index; remembers the order the training batches arrive in."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(1, 2)
        self.seen: list[list[int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append([int(v) for v in x[:, 0].tolist()])
        return self.lin(x)


def _index_data(n: int) -> TensorData:
    return TensorData(torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n) % 2, [])


def _orders(seed: int, n: int = 20, epochs: int = 4) -> list[list[int]]:
    model = Recorder()
    list(fit(model, _index_data(n), None, cfg(epochs=epochs, batch_size=n, seed=seed)))
    return model.seen


def test_training_data_is_shuffled_every_epoch() -> None:
    orders = _orders(seed=0)
    assert len(orders) == 4
    for order in orders:
        assert sorted(order) == list(range(20)), "every sample exactly once per epoch"
    assert orders[0] != list(range(20)), "not shuffled"
    assert len({tuple(o) for o in orders}) == 4, "the same order in two epochs"
    assert _orders(seed=0) == orders, "shuffling is not reproducible"
    assert _orders(seed=1) != orders, "the seed does not change the shuffling"


def test_fit_without_validation_reports_none() -> None:
    history = list(fit(Recorder(), _index_data(6), None, cfg(epochs=2)))
    assert [h.val_loss for h in history] == [None, None]
    assert [h.val_acc for h in history] == [None, None]
    empty = TensorData(torch.zeros(0, 1), torch.zeros(0, dtype=torch.long), [])
    history = list(fit(Recorder(), _index_data(6), empty, cfg(epochs=1)))
    assert history[0].val_loss is None


def test_same_seed_same_history_different_seed_different(dataset) -> None:
    h0, r0 = run(cfg(epochs=2, seed=0), dataset)
    h0b, r0b = run(cfg(epochs=2, seed=0), dataset)
    h1, _ = run(cfg(epochs=2, seed=1), dataset)
    assert [_numbers(h) for h in h0] == [_numbers(h) for h in h0b]
    a, b = r0.model.state_dict(), r0b.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [_numbers(h) for h in h0] != [_numbers(h) for h in h1]


@pytest.mark.parametrize(
    ("model", "lr", "epochs"),
    [("simplenet", 0.001, 6), ("cnn", 0.01, 5)],
)
def test_learns_the_separable_set(dataset, model: str, lr: float, epochs: int) -> None:
    history, result = run(cfg(model, lr=lr, epochs=epochs, batch_size=8), dataset)
    assert len(history) == epochs
    assert result.test.accuracy >= 0.9, (result.test, [_numbers(h) for h in history])
    assert history[-1].val_acc >= 0.9
    assert min(h.train_loss for h in history[1:]) < history[0].train_loss
    assert all(a >= 0.75 for a in result.test.per_class.values()), result.test.per_class
    assert result.wrong_test_images() == [] or result.test.accuracy < 1


def test_transfer_model_learns_and_caches_features(tmp_path: Path, gen, monkeypatch) -> None:
    root = gen.make_book_dataset(tmp_path / "d", counts=(5, 1, 2))
    ds = scan_dataset(root)
    n_images = len(ds.all_samples())
    cache = tmp_path / "cache"
    config = cfg("efficientnet-lite0", lr=0.01, epochs=10, batch_size=4)

    features = CountCalls(train_mod.compute_features)
    decodes = CountCalls(train_mod.load_for_model)
    monkeypatch.setattr(train_mod, "compute_features", features)
    monkeypatch.setattr(train_mod, "load_for_model", decodes)
    history, result = run(config, ds, cache_dir=cache)
    assert result.test.accuracy >= 0.9, (result.test, [_numbers(h) for h in history])
    assert features.calls > 0
    assert decodes.calls == n_images
    assert list(cache.glob("features-efficientnet-lite0-*.pt")), "no feature cache written"
    assert not list(cache.glob(".*.tmp")), "temp file left behind"
    # only the head trained: the backbone still holds the pretrained weights
    assert all(not p.requires_grad for p in result.model.backbone.parameters())

    features.calls = decodes.calls = 0
    history2, result2 = run(config, ds, cache_dir=cache)
    assert features.calls == 0, "the backbone ran again although every image was cached"
    assert decodes.calls == 0, "cached images were decoded again"
    assert result2.test.accuracy >= 0.9
    for a, b in zip(history, history2):
        assert _numbers(a) == pytest.approx(_numbers(b), abs=1e-5)

    # the trained head works on the full model (backbone + head) fed with raw images
    spec = MODELS["efficientnet-lite0"].input_spec
    images = torch.stack([load_for_model(s.path, spec)[0] for s in ds.splits["test"]])
    labels = torch.tensor([s.label for s in ds.splits["test"]])
    full = evaluate(result2.model, TensorData(images, labels, ds.splits["test"]), spec=spec, classes=ds.classes)
    assert full.accuracy == pytest.approx(result2.test.accuracy)
    assert full.predicted == result2.test.predicted


def test_cache_is_only_used_for_the_same_images(tmp_path: Path, gen, monkeypatch) -> None:
    """A changed file (new content, same name) is featurised again: the cache keys on content."""
    root = gen.make_book_dataset(tmp_path / "d", counts=(2, 0, 0), splits=("train",))
    ds = scan_dataset(root)
    cache = tmp_path / "cache"
    config = cfg("efficientnet-lite0", lr=0.01, epochs=1)
    run(config, ds, cache_dir=cache)
    changed = ds.splits["train"][0].path
    gen.write_image(changed, (0, 255, 0), 1234)
    decodes = CountCalls(train_mod.load_for_model)
    monkeypatch.setattr(train_mod, "load_for_model", decodes)
    run(config, ds, cache_dir=cache)
    assert decodes.calls == 1


# ---------------------------------------------------------------- stopping


@pytest.mark.parametrize(("stop_after", "full_epochs"), [(1, 0), (3, 0), (8, 1)])
def test_stop_flag_is_honoured_within_one_batch(dataset, stop_after: int, full_epochs: int) -> None:
    batches = 0

    def on_progress(p: Progress) -> None:
        nonlocal batches
        if p.stage == "train":
            batches += 1

    # 24 training images, batch 4: 6 batches per epoch
    history, result = run(cfg(epochs=3, batch_size=4), dataset, stop=lambda: batches >= stop_after, on_progress=on_progress)
    assert batches == stop_after, "batches ran after the stop flag was set"
    assert result.stopped
    assert len(history) == full_epochs
    assert result.test is None  # a stopped run is not evaluated


def test_stop_before_training_starts(dataset) -> None:
    progress: list[Progress] = []
    history, result = run(cfg(), dataset, stop=lambda: True, on_progress=progress.append)
    assert history == [] and result.stopped and result.test is None
    assert progress == []


def test_fit_stops_after_one_batch() -> None:
    model = Recorder()
    calls = []
    stats = list(fit(model, _index_data(20), None, cfg(epochs=2, batch_size=2), stop=lambda: sum(p.done > 0 for p in calls) >= 1, on_progress=calls.append))
    assert stats == []
    assert len(model.seen) == 1


# ---------------------------------------------------------------- failures


class NanLoss(nn.Module):
    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return logits.sum() * float("nan")


def test_nan_loss_raises_training_error(dataset, monkeypatch) -> None:
    monkeypatch.setattr(train_mod.nn, "CrossEntropyLoss", NanLoss)
    with pytest.raises(TrainingError, match="lower the learning rate"):
        run(cfg(epochs=2), dataset)


def test_nan_weights_raise_training_error() -> None:
    model = Recorder()
    with torch.no_grad():
        model.lin.weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match="epoch 0, batch 0"):
        list(fit(model, _index_data(8), None, cfg(epochs=1)))


def test_corrupt_training_images_are_skipped_and_reported(book_data: Path, gen) -> None:
    cut = gen.write_truncated_jpeg(book_data / "train" / "cat" / "cut.jpg")
    text = gen.write_text_as_png(book_data / "train" / "fish" / "notes.png")
    also = gen.write_text_as_png(book_data / "test" / "fish" / "bad.png")
    ds = scan_dataset(book_data)
    assert ds.counts()["train"] == {"cat": 13, "fish": 13}
    history, result = run(cfg(epochs=2), ds)
    assert sorted(p for p, _ in result.skipped) == sorted([cut, text, also])
    assert all(why.startswith(p.name + ":") for p, why in result.skipped)
    assert len(history) == 2 and not result.stopped
    assert result.test.n == 8
    assert {s.path for s in result.test_samples}.isdisjoint({also})


def test_only_one_readable_class_is_an_error(tmp_path: Path, gen) -> None:
    gen.make_class_folders(tmp_path / "train", {"cat": 3})
    for i in range(3):
        gen.write_text_as_png(tmp_path / "train" / "fish" / f"f{i}.png")
    with pytest.raises(TrainingError, match="one class"):
        run(cfg(), scan_dataset(tmp_path))


def test_no_readable_training_images_is_an_error(tmp_path: Path, gen) -> None:
    for c in ("cat", "fish"):
        gen.write_truncated_jpeg(tmp_path / "train" / c / "x.jpg")
    with pytest.raises(TrainingError, match="no readable training images"):
        run(cfg(), scan_dataset(tmp_path))


def test_one_image_per_class_trains_without_validation(tmp_path: Path, gen) -> None:
    gen.make_class_folders(tmp_path / "train", {"cat": 1, "fish": 1})
    history, result = run(cfg(epochs=2), scan_dataset(tmp_path))
    assert len(history) == 2
    assert all(h.val_loss is None and h.val_acc is None for h in history)
    assert all(math.isfinite(h.train_loss) for h in history)
    assert not result.stopped
    assert result.test is None and result.test_samples == []


# ---------------------------------------------------------------- evaluate


def test_evaluate_per_class_accuracy_and_confusion() -> None:
    # identity "model": the prediction is the argmax of the features
    model = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3) * 4)
    predicted = [0, 0, 1, 1, 1, 2, 0]
    y = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    x = nn.functional.one_hot(torch.tensor(predicted), 3).float()
    model.train()
    ev = evaluate(model, TensorData(x, y, []), classes=["a", "b", "c"], batch_size=3)
    assert isinstance(ev, Evaluation)
    assert model.training, "evaluate must restore the training mode"
    assert ev.n == 7
    assert ev.confusion == [[2, 0, 0], [0, 2, 0], [1, 1, 1]]
    assert sum(map(sum, ev.confusion)) == ev.n
    assert ev.per_class == pytest.approx({"a": 1.0, "b": 1.0, "c": 1 / 3})
    assert ev.accuracy == pytest.approx(5 / 7)
    assert ev.predicted == predicted
    assert len(ev.confidence) == 7 and all(0 < c <= 1 for c in ev.confidence)
    assert math.isfinite(ev.loss) and ev.loss > 0
    d = ev.to_dict()
    assert set(d) == {"accuracy", "per_class", "confusion", "n", "loss"}


def test_evaluate_after_training(dataset) -> None:
    _, result = run(cfg(epochs=2), dataset)
    ev = result.test
    assert ev.n == 8
    assert sum(map(sum, ev.confusion)) == 8
    assert [sum(row) for row in ev.confusion] == [4, 4]
    assert set(ev.per_class) == {"cat", "fish"}
    assert all(0 <= a <= 1 for a in ev.per_class.values())


def test_evaluate_empty_data() -> None:
    ev = evaluate(nn.Linear(2, 2), TensorData(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), []), classes=["a", "b"])
    assert ev.n == 0 and math.isnan(ev.accuracy)
    assert ev.confusion == [[0, 0], [0, 0]]


# ---------------------------------------------------------------- decode once


def test_images_are_decoded_once_per_run_not_per_epoch(dataset, monkeypatch) -> None:
    decodes = CountCalls(train_mod.load_for_model)
    monkeypatch.setattr(train_mod, "load_for_model", decodes)
    import fishcat.preprocess

    loads = CountCalls(fishcat.preprocess.load_image)
    monkeypatch.setattr(fishcat.preprocess, "load_image", loads)
    history, result = run(cfg(epochs=3), dataset)
    assert len(history) == 3
    n = len(dataset.all_samples())
    assert decodes.calls == n
    assert loads.calls == n


def test_fit_temperature_sharpens_underconfident_and_softens_overconfident_logits() -> None:
    from fishcat.train import TEMPERATURE_RANGE, fit_temperature

    y = torch.tensor([0, 1] * 20)
    right_but_timid = torch.stack([torch.where(y == 0, 0.4, -0.4), torch.where(y == 0, -0.4, 0.4)], dim=1)
    assert fit_temperature(right_but_timid, y) < 1.0
    # 30% confidently wrong: the fitted temperature must soften the probabilities
    flipped = y.clone()
    flipped[:12] = 1 - flipped[:12]
    loud = torch.stack([torch.where(flipped == 0, 6.0, -6.0), torch.where(flipped == 0, -6.0, 6.0)], dim=1)
    t = fit_temperature(loud, y)
    assert 1.0 < t <= TEMPERATURE_RANGE[1]
    assert fit_temperature(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)) == 1.0


def test_checkpoint_records_temperature_and_predictor_uses_it(book_data, tmp_path) -> None:
    from fishcat.checkpoint import build_metadata, load_checkpoint, save_checkpoint
    from fishcat.predict import Predictor
    from fishcat.preprocess import normalize
    from fishcat.train import TrainConfig, TrainResult, train

    result = [e for e in train(TrainConfig(model="simplenet", epochs=3), scan_dataset(book_data)) if isinstance(e, TrainResult)][0]
    path = save_checkpoint(result.model, build_metadata(result), tmp_path / "t.pt")
    ckpt = load_checkpoint(path, "cpu")
    assert ckpt.temperature == pytest.approx(result.temperature)
    image = next(iter(result.dataset.splits["test"])).path
    x, _ = load_for_model(image, ckpt.input_spec)
    with torch.no_grad():
        logits = ckpt.model(normalize(x.unsqueeze(0), ckpt.input_spec))
    expected = torch.softmax(logits / result.temperature, dim=1)[0]
    got = Predictor(ckpt).predict(image).probabilities
    assert list(got.values()) == pytest.approx(expected.tolist(), abs=1e-5)
