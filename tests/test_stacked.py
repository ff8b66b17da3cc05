"""Stacked training: K networks in one batched step, each as it would train alone, each 1-Lipschitz."""

import numpy as np
import pytest
import torch

from lipsdf.errors import LipsdfError
from lipsdf.evaluate import lipschitz_ratio
from lipsdf.geometry.primitives import circle, flower, rectangle
from lipsdf.nn import build_model
from lipsdf.sampling import sample
from lipsdf.training import StackedNetworks, Trainer, TrainingConfig, train_stacked

MODEL = {"arch": "sll", "dim": 2, "layers": 4, "width": 16}


@pytest.fixture(scope="module")
def datasets():
    return [sample(shape, "signed", n=2000, n_test=400, seed=0) for shape in (circle(), flower(), rectangle())]


@pytest.mark.parametrize("config", [{"arch": "sll", "layers": 3, "width": 16},
                                    {"arch": "sll", "layers": 3, "width": 16, "activation": "softplus"},
                                    {"arch": "ortho", "layers": 3, "width": 16},
                                    {"arch": "mlp", "layers": 3, "width": 16}, {"arch": "siren", "layers": 3, "width": 16}],
                         ids=lambda c: "-".join(map(str, c.values())))
def test_a_stack_evaluates_each_network_on_its_own_row(config):
    torch.manual_seed(0)
    models = [build_model({**config, "dim": 3}) for _ in range(4)]
    stack = StackedNetworks(models)
    points = torch.randn(4, 300, 3)
    values = stack(points)
    assert values.shape == (4, 300)
    for k, model in enumerate(models):
        torch.testing.assert_close(values[k], model(points[k]), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("optimiser", ["adam", "muon"])
def test_stacked_runs_end_with_the_fields_of_runs_alone(datasets, optimiser):
    config = TrainingConfig(epochs=3, batch_size=500, checkpoint_every=0, optimiser=optimiser)
    alone = [Trainer(data, MODEL, config).run() for data in datasets]
    together = train_stacked([Trainer(data, MODEL, config) for data in datasets])
    points = np.random.default_rng(0).uniform(-1.3, 1.3, (2000, 2))
    for single, stacked in zip(alone, together):
        np.testing.assert_allclose(stacked(points), single(points), atol=1e-5 * single.normalization.scale)
        assert stacked.offset == pytest.approx(single.offset, abs=1e-6)
        assert stacked.summary["final"]["mae"] == pytest.approx(single.summary["final"]["mae"], rel=1e-4)
    assert np.abs(together[0](points) - together[1](points)).max() > 1e-2  # each learned its own shape


def test_stacked_fields_stay_1_lipschitz(datasets):
    config = TrainingConfig(epochs=2, batch_size=500, checkpoint_every=0, optimiser="muon", lr=0.05)
    for field in train_stacked([Trainer(data, MODEL, config) for data in datasets]):
        assert lipschitz_ratio(field, 20_000, seed=1) <= 1 + 1e-6


def test_stacked_runs_write_their_own_logs_and_fields(datasets, tmp_path):
    config = TrainingConfig(epochs=2, batch_size=1000, checkpoint_every=1)
    trainers = [Trainer(data, MODEL, config, output=tmp_path / f"{k}.pt", log=tmp_path / f"{k}.jsonl")
                for k, data in enumerate(datasets)]
    train_stacked(trainers)
    for k in range(len(datasets)):
        assert (tmp_path / f"{k}.pt").exists()
        assert len((tmp_path / f"{k}.jsonl").read_text().splitlines()) == 2


def test_runs_that_cannot_share_a_step_are_refused(datasets):
    config = TrainingConfig(epochs=1, batch_size=500, checkpoint_every=0)
    with pytest.raises(LipsdfError, match="one model"):
        train_stacked([Trainer(datasets[0], MODEL, config), Trainer(datasets[1], {**MODEL, "width": 8}, config)])
    smaller = sample(circle(), "signed", n=1000, n_test=200, seed=0)
    with pytest.raises(LipsdfError, match="one size"):
        train_stacked([Trainer(datasets[0], MODEL, config), Trainer(smaller, MODEL, config)])
    sal = sample(circle(), "sal", n=1000, n_test=200, seed=0)
    with pytest.raises(LipsdfError, match="input gradient"):
        train_stacked([Trainer(sal, {"arch": "mlp", "dim": 2, "layers": 2, "width": 8}, config)] * 2)
