"""Tests for fishcat.models: every registered network, its parameters and the pretrained weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fishcat.models import (
    DEFAULT_MODEL,
    MODELS,
    EfficientNetLite0Backbone,
    SimpleNet,
    build_model,
    count_parameters,
    describe_layers,
    load_efficientnet_lite0,
    resolve_device,
    trainable_state_dict,
)
from fishcat.preprocess import InputSpec, load_for_model, normalize

MODEL_NAMES = list(MODELS)
FROZEN = [n for n in MODEL_NAMES if MODELS[n].frozen_backbone]

# ImageNet class indices: 281-285 are domestic cats (tabby, tiger cat, Persian, Siamese,
# Egyptian); 0-1 tench and goldfish, 389-397 the remaining fish (barracouta ... puffer).
IMAGENET_CATS = set(range(281, 286))
IMAGENET_FISH = {0, 1, *range(389, 398)}


def _input(name: str, batch: int = 2, seed: int = 0) -> torch.Tensor:
    spec = MODELS[name].input_spec
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, spec.size, spec.size), generator=g, dtype=torch.uint8)
    return normalize(images, spec)


def test_registry_is_sane() -> None:
    assert DEFAULT_MODEL in MODELS
    assert {"simplenet", "cnn", "efficientnet-lite0"} <= set(MODELS)
    for name, info in MODELS.items():
        assert isinstance(info.input_spec, InputSpec), name
        assert info.description, name
        assert callable(info.build), name
    with pytest.raises(KeyError, match="unknown model"):
        build_model("resnet-9000", 2)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shape_and_finite(name: str) -> None:
    n_classes = 3  # 2 classes are covered by every other test
    torch.manual_seed(0)
    model = build_model(name, n_classes).eval()
    with torch.no_grad():
        out = model(_input(name))
    assert out.shape == (2, n_classes)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_backward_reaches_trainable_params_only(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 2)
    model.train()
    loss = nn.functional.cross_entropy(model(_input(name)), torch.tensor([0, 1]))
    loss.backward()
    params = dict(model.named_parameters())
    trainable = {k for k, p in params.items() if p.requires_grad}
    assert trainable, "nothing to train"
    for k, p in params.items():
        if p.requires_grad:
            assert p.grad is not None, f"{k} got no gradient"
            assert torch.isfinite(p.grad).all(), k
        else:
            assert p.grad is None, f"frozen {k} got a gradient"
    if MODELS[name].frozen_backbone:
        assert all(k.startswith("head.") for k in trainable), sorted(trainable)[:5]
        assert not any(p.requires_grad for p in model.backbone.parameters())
    else:
        assert trainable == set(params), "a from-scratch model trains every parameter"


@pytest.mark.parametrize("name", FROZEN)
def test_frozen_backbone_stays_in_eval_mode(name: str) -> None:
    model = build_model(name, 2)
    model.train()
    assert model.training
    assert model.head.training
    assert not model.backbone.training
    assert not any(m.training for m in model.backbone.modules()), "a backbone layer (BatchNorm?) is in training mode"
    # BatchNorm running statistics must not move while the head trains
    bn = [m for m in model.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bn
    before = [m.running_mean.clone() for m in bn]
    model(_input(name))
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, bn))
    model.eval()
    assert not model.head.training and not model.backbone.training
    model.train()
    assert model.head.training and not model.backbone.training


def test_simplenet_is_the_books_network() -> None:
    model = build_model("simplenet", 2)
    assert isinstance(model, SimpleNet)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12288, 84), (84, 50), (50, 2)]
    assert all(m.bias is not None for m in linears)
    # No other layers with parameters or state: exactly three Linear layers.
    leaves = [m for m in model.modules() if not list(m.children())]
    assert leaves == linears
    assert MODELS["simplenet"].input_spec.size == 64  # 64 * 64 * 3 = 12288
    # Linear -> ReLU -> Linear -> ReLU -> Linear, computed by hand
    x = torch.randn(3, 3, 64, 64)
    fc1, fc2, fc3 = linears
    expected = fc3(torch.relu(fc2(torch.relu(fc1(x.reshape(3, -1))))))
    assert torch.allclose(model(x), expected, atol=0, rtol=0)
    trainable, total = count_parameters(model)
    assert trainable == total == 12288 * 84 + 84 + 84 * 50 + 50 + 50 * 2 + 2


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_count_parameters_and_describe_layers(name: str) -> None:
    model = build_model(name, 2)
    trainable, total = count_parameters(model)
    assert 0 < trainable <= total
    assert total == sum(p.numel() for p in model.parameters())
    rows = describe_layers(model)
    assert 0 < len(rows) <= 41  # max_rows plus the "... more layers ..." summary
    for row in rows:
        layer_name, text, n, is_trainable = row
        assert isinstance(layer_name, str) and isinstance(text, str)
        assert "\n" not in text, f"{layer_name}: a table row must be one line"
        assert isinstance(n, int) and n >= 0
        assert isinstance(is_trainable, bool)
    # every parameter is counted exactly once, summary row included (EfficientNet's convs own
    # weights *and* a padding child: they must still be listed)
    assert sum(r[2] for r in rows) == total
    assert sum(r[2] for r in rows if r[3]) <= total
    if MODELS[name].frozen_backbone:
        head = model.head[-1]
        assert trainable == head.weight.numel() + head.bias.numel() == EfficientNetLite0Backbone.feature_dim * 2 + 2 == 2280 * 2 + 2
        assert any(r[0].startswith("...") for r in rows), "a backbone's hundreds of layers are summarised"
        assert rows[-1][3] is True and rows[-1][0].startswith("head")
        assert rows[0][3] is False
    else:
        assert trainable == total
        assert all(r[3] for r in rows if r[2] > 0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_trainable_state_dict(name: str) -> None:
    model = build_model(name, 2)
    state = trainable_state_dict(name, model)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    if MODELS[name].frozen_backbone:
        assert not any(k.startswith("backbone.") for k in state)
        assert set(state) == {"head.1.weight", "head.1.bias"}
    else:
        assert set(state) == set(model.state_dict())
    # a copy: changing it does not touch the model
    k = next(iter(state))
    state[k].add_(1.0)
    assert not torch.equal(state[k], model.state_dict()[k])


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")


def _top5(net: nn.Module, path) -> list[int]:
    spec = MODELS["efficientnet-lite0"].input_spec
    x, seen = load_for_model(path, spec)
    assert seen.size == (spec.size, spec.size)
    with torch.no_grad():
        logits = net(normalize(x.unsqueeze(0), spec))
    return logits[0].topk(5).indices.tolist()


@pytest.fixture(scope="module")
def imagenet_net() -> nn.Module:
    return load_efficientnet_lite0().eval()


def test_pretrained_backbone_knows_a_cat_photo(imagenet_net, gen) -> None:
    top5 = _top5(imagenet_net, gen.cat_photo)
    assert IMAGENET_CATS & set(top5), f"no ImageNet cat class in top-5 {top5}: pretrained weights not loaded?"


def test_pretrained_backbone_knows_a_fish_photo(imagenet_net, gen) -> None:
    top5 = _top5(imagenet_net, gen.fish_photo)
    assert IMAGENET_FISH & set(top5), f"no ImageNet fish class in top-5 {top5}: pretrained weights not loaded?"


def test_untrained_backbone_differs_from_pretrained(imagenet_net) -> None:
    """The pretrained flag really loads weights (a fresh net has different ones)."""
    fresh = load_efficientnet_lite0(pretrained=False)
    a = dict(imagenet_net.state_dict())
    b = fresh.state_dict()
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("name", FROZEN)
def test_transfer_model_uses_the_pretrained_backbone(name: str, imagenet_net) -> None:
    model = build_model(name, 2)
    for k, v in imagenet_net.state_dict().items():
        assert torch.equal(model.backbone.net.state_dict()[k], v), k
