"""Muon: the batched orthogonalisation against the SVD and against torch's own Muon, and training with it."""

import numpy as np
import pytest
import torch

from lipsdf.geometry.primitives import circle
from lipsdf.sampling import sample
from lipsdf.training import Callback, Trainer, TrainingConfig, read_checkpoint, train
from lipsdf.training.muon import StackedMuon, orthogonalised

SMALL = {"layers": 6, "width": 32}


@pytest.mark.parametrize("shape", [(4, 32, 32), (3, 48, 16), (2, 8, 40)])
def test_orthogonalised_keeps_the_singular_vectors_and_brings_the_singular_values_near_one(shape):
    stack = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    result = orthogonalised(stack)
    u, s, vh = torch.linalg.svd(stack, full_matrices=False)
    singular = torch.linalg.svdvals(result)
    assert result.shape == stack.shape
    assert float(singular.min()) > 0.6 and float(singular.max()) < 1.3  # the quintic's documented band
    polar = u @ vh  # the exact orthogonal factor: Muon's update approximates it
    cosine = (result * polar).sum(dim=(1, 2)) / (result.norm(dim=(1, 2)) * polar.norm(dim=(1, 2)))
    assert float(cosine.min()) > 0.97


def test_stacked_muon_steps_as_torch_muon_does():
    """Same gradients, same steps as ``torch.optim.Muon`` with Adam-matched scaling (which orthogonalises
    in bfloat16: hence the tolerance)."""
    generator = torch.Generator().manual_seed(1)
    start = [torch.randn(16, 16, generator=generator) for _ in range(3)]
    ours = [torch.nn.Parameter(w.clone()) for w in start]
    theirs = [torch.nn.Parameter(w.clone()) for w in start]
    mine = StackedMuon(ours, lr=0.01)
    reference = torch.optim.Muon(theirs, lr=0.01, weight_decay=0.0, adjust_lr_fn="match_rms_adamw")
    for _ in range(5):
        grads = [torch.randn(16, 16, generator=generator) for _ in start]
        for p, q, g in zip(ours, theirs, grads):
            p.grad, q.grad = g.clone(), g.clone()
        mine.step()
        reference.step()
    for p, q, w in zip(ours, theirs, start):
        moved, expected = (p - w).detach(), (q - w).detach()
        assert float((moved - expected).norm() / expected.norm()) < 0.05


def test_stacked_muon_takes_its_rate_from_a_tensor_the_schedule_updates():
    weight = torch.nn.Parameter(torch.zeros(8, 8))
    rate = torch.tensor(0.0)
    optimiser = StackedMuon([weight], lr=rate)
    weight.grad = torch.ones(8, 8)
    optimiser.step()
    assert float(weight.detach().abs().max()) == 0.0  # a zero rate moves nothing
    rate.fill_(0.1)
    optimiser.step()
    assert float(weight.detach().abs().max()) > 0.0


def test_muon_training_fits_a_circle_and_resumes_to_the_same_weights(tmp_path):
    center, radius = np.array([40.0, -10.0]), 5.0
    data = sample(circle(radius, n=256, center=tuple(center)), "signed", n=20_000, n_test=2_000, seed=0)
    config = TrainingConfig(epochs=30, batch_size=1024, lr=5e-3, lam=10.0, loss="hkr", optimiser="muon",
                            checkpoint_every=8)
    groups = Trainer(data, SMALL, config).start().optimiser.param_groups
    assert [len(group["params"]) for group in groups] == [6, 6 * 2 + 2]  # the matrices; biases, scalings, head
    field = train(data, SMALL, config, output=tmp_path / "full.pt")
    x = np.random.default_rng(1).uniform(*data.normalization.world_bounds(), size=(20_000, 2))
    truth = np.linalg.norm(x - center, axis=1) - radius
    assert np.abs(field(x) - truth).mean() < 0.002 * 2 * np.sqrt(2) * radius  # Adam: 0.0023 in these epochs

    class Interrupt(Callback):
        def on_checkpoint(self, trainer, field, epoch, last):
            if epoch == 16:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(data, SMALL, config, output=tmp_path / "cut.pt", callbacks=[Interrupt()]).run()
    saved_config, model, state = read_checkpoint(tmp_path / "cut.pt")
    resumed = Trainer(data, model, saved_config, output=tmp_path / "cut.pt", resume=state).run()
    np.testing.assert_array_equal(resumed(x), field(x))  # Muon's momentum came back with the checkpoint


def test_muon_options_are_checked():
    from lipsdf.errors import LipsdfError

    with pytest.raises(LipsdfError, match="optimiser"):
        TrainingConfig(optimiser="sgd")
    with pytest.raises(LipsdfError, match="Muon"):
        TrainingConfig(muon_lr=0.0)
    with pytest.raises(ValueError, match="matrices"):
        StackedMuon([torch.nn.Parameter(torch.zeros(3))])
