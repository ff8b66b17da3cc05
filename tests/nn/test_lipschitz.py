"""The 1-Lipschitz guarantee, checked by autograd and on random pairs, at init and after training steps."""

import numpy as np
import pytest
import torch

from lipsdf.errors import LipsdfError
from lipsdf.nn import MLP, SIREN, GroupSort, LipschitzMLP, build_model
from lipsdf.nn.layers import ACTIVATIONS
from lipsdf.nn.models import LIPSCHITZ_ARCHITECTURES

N_POINTS = 100_000


def _max_gradient_norm(model, points):
    points = points.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(points).sum(), points)
    return gradient.norm(dim=1).max().item()


def _max_pair_ratio(model, x, y):
    with torch.no_grad():
        return ((model(x) - model(y)).abs() / (x - y).norm(dim=1)).max().item()


def _train_a_few_steps(model, dim, steps=20):
    """Push the weights away from their initialisation with a loss that rewards steep fields."""
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        x = torch.rand(512, dim) * 2 - 1
        loss = -(model(x) * torch.sign(x[:, 0])).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model


# Every Lipschitz architecture and activation a user can choose.
CHOICES = [{"arch": "sll", "activation": name} for name in ACTIVATIONS] + [
    {"arch": "sll", "activation": "softplus", "beta": 5.0}, {"arch": "sll", "activation": "softplus", "beta": 1e4}] + [
    {"arch": "ortho", "group_size": size} for size in (2, 4, None)]


def test_choices_cover_every_activation():
    assert {c.get("activation") for c in CHOICES if c["arch"] == "sll"} == set(ACTIVATIONS)
    assert {c["arch"] for c in CHOICES} == set(LIPSCHITZ_ARCHITECTURES)


@pytest.mark.parametrize("choice", CHOICES, ids=lambda c: "-".join(map(str, c.values())))
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("trained", [False, True], ids=["init", "trained"])
def test_lipschitz_by_construction(choice, dim, trained):
    torch.manual_seed(0)
    model = LipschitzMLP(dim, layers=6, width=32, **choice)
    if trained:
        _train_a_few_steps(model, dim)
    generator = torch.Generator().manual_seed(1)
    points = torch.rand(N_POINTS, dim, generator=generator) * 4 - 2
    other = points + torch.randn(N_POINTS, dim, generator=generator) * torch.rand(N_POINTS, 1, generator=generator)
    assert _max_gradient_norm(model, points) <= 1 + 1e-4
    assert _max_pair_ratio(model, points, other) <= 1 + 1e-5


@pytest.mark.parametrize("beta", [1.0, 100.0])
def test_softplus_slope_lies_in_zero_one(beta):
    """The SLL bound needs an activation with slope in [0, 1] (Araujo et al. 2023): checked by autograd."""
    x = torch.linspace(-50, 50, 100_001, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(ACTIVATIONS["softplus"](beta)(x).sum(), x)
    assert slope.min() >= 0 and slope.max() <= 1


def test_sll_softplus_is_smooth_where_relu_is_not():
    """Softplus gives normals that vary continuously: the gradient at nearby points differs little."""
    torch.manual_seed(0)
    smooth, kinked = (LipschitzMLP(2, layers=4, width=16, activation=a, beta=10.0) for a in ("softplus", "relu"))
    kinked.load_state_dict(smooth.state_dict())
    x = torch.linspace(-1, 1, 20_001)[:, None] * torch.tensor([[1.0, 0.3]])
    jumps = {}
    for name, model in (("softplus", smooth), ("relu", kinked)):
        points = x.clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(model(points).sum(), points)
        jumps[name] = (gradient[1:] - gradient[:-1]).norm(dim=1).max().item()
    assert jumps["softplus"] < 0.01 < jumps["relu"]


def test_paper_size_sll_is_lipschitz():
    torch.manual_seed(0)
    model = LipschitzMLP(3, arch="sll", layers=20, width=128)
    points = torch.rand(20_000, 3) * 2 - 1
    assert _max_gradient_norm(model, points) <= 1 + 1e-4


@pytest.mark.parametrize("arch", ["sll", "ortho"])
def test_frozen_model_gives_the_same_values(arch):
    torch.manual_seed(0)
    model = _train_a_few_steps(LipschitzMLP(3, arch=arch, layers=4, width=16), 3, steps=5)
    x = torch.randn(1000, 3)
    with torch.no_grad():
        expected = model(x)
        model.freeze()
        frozen = model(x)
        model.unfreeze()
    torch.testing.assert_close(frozen, expected, rtol=0, atol=1e-6)


def test_groupsort_is_a_permutation_of_its_input():
    x = torch.randn(50, 8)
    for group_size in (2, 4, None):
        y = GroupSort(group_size)(x)
        torch.testing.assert_close(torch.sort(y, dim=1).values, torch.sort(x, dim=1).values)
    torch.testing.assert_close(GroupSort(2)(torch.tensor([[3.0, 1.0, -1.0, 2.0]])), torch.tensor([[1.0, 3.0, -1.0, 2.0]]))


def test_baselines_and_config_round_trip():
    for config in ({"arch": "mlp", "dim": 3, "layers": 2, "width": 8, "activation": "softplus"},
                   {"arch": "siren", "dim": 2, "layers": 2, "width": 8},
                   {"arch": "sll", "dim": 2, "layers": 2, "width": 8},
                   {"arch": "ortho", "dim": 3, "layers": 2, "width": 8, "group_size": None}):
        torch.manual_seed(0)
        model = build_model(config)
        copy = build_model(config)
        copy.load_state_dict(model.state_dict())
        x = torch.randn(7, config["dim"])
        with torch.no_grad():
            torch.testing.assert_close(copy(x), model(x))
            assert model(x[:1]).shape == (1,)  # one point in, one value out
    assert isinstance(build_model({"arch": "mlp", "dim": 3}), MLP)
    assert isinstance(build_model({"arch": "siren", "dim": 3}), SIREN)


def test_bad_configs_are_clear_errors():
    with pytest.raises(LipsdfError, match="unknown architecture"):
        build_model({"arch": "transformer", "dim": 3})
    with pytest.raises(LipsdfError, match="dim"):
        build_model({"arch": "sll"})
    with pytest.raises(LipsdfError, match="bad option"):
        build_model({"arch": "sll", "dim": 3, "depth": 3})
    with pytest.raises(LipsdfError, match="width"):
        build_model({"arch": "sll", "dim": 3, "width": 2})


def test_the_bound_is_not_vacuous():
    """A plain MLP is not 1-Lipschitz, so the checks above can fail."""
    torch.manual_seed(0)
    model = MLP(2, layers=3, width=64)
    for layer in model.net:
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.normal_(layer.weight, std=1.0)
    assert _max_gradient_norm(model, torch.rand(1000, 2)) > 1.5
    assert np.isfinite(_max_pair_ratio(model, torch.rand(10, 2), torch.rand(10, 2)))


@pytest.mark.parametrize("config, message", [
    ({"arch": "sll", "activation": "tanh"}, "unknown SLL activation"),
    ({"arch": "sll", "activation": "softplus", "beta": 0.0}, "beta must be positive"),
    ({"arch": "ortho", "activation": "softplus"}, "activation is GroupSort"),
])
def test_impossible_activations_are_lipsdf_errors(config, message):
    with pytest.raises(LipsdfError, match=message):
        build_model({"dim": 2, "layers": 2, "width": 8, **config})
