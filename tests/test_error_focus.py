"""The error focus: a share of each epoch's batches drawn where the field's error is, and a run with it that
fits, resumes to the same weights and stays 1-Lipschitz."""

import numpy as np
import pytest
import torch

from lipsdf.errors import LipsdfError
from lipsdf.evaluate import lipschitz_ratio
from lipsdf.geometry.primitives import circle
from lipsdf.sampling import sample
from lipsdf.training import Callback, Trainer, TrainingConfig, read_checkpoint, train

SMALL = {"layers": 6, "width": 32}
CENTER, RADIUS = np.array([40.0, -10.0]), 5.0


@pytest.fixture(scope="module")
def data():
    return sample(circle(RADIUS, n=256, center=tuple(CENTER)), "signed", n=20_000, n_test=1000, seed=0)


def test_the_focused_share_of_an_epoch_is_drawn_in_proportion_to_the_errors(data):
    trainer = Trainer(data, SMALL, TrainingConfig(epochs=1, batch_size=1000, error_focus=0.4, checkpoint_every=0))
    state = trainer.start(log=False)
    state.errors.zero_()
    state.errors[:10] = torch.arange(1.0, 11.0)  # only ten points have an error, growing with the index
    state.shuffle(trainer.device)
    counts = np.bincount(state.order.numpy(), minlength=len(data.points))
    assert len(state.order) == 1.4 * 20_000  # every point once, and 40% as many again drawn by error
    assert counts[10:].min() == counts[10:].max() == 1
    assert counts[:10].sum() == 10 + 0.4 * 20_000  # the drawn ones all among the ten
    assert np.corrcoef(counts[:10], np.arange(1, 11))[0, 1] > 0.95  # in proportion to their errors


def test_a_run_records_each_trained_points_error(data):
    trainer = Trainer(data, SMALL, TrainingConfig(epochs=1, batch_size=1000, error_focus=0.5, checkpoint_every=0))
    state = trainer.start(log=False)
    state.shuffle(trainer.device)
    for _ in range(state.steps_per_epoch):
        trainer.step(state)
    errors = state.errors.numpy()
    assert np.all(errors != 1.0)  # every point was trained on, and its error recorded
    # the last batch's errors are |f - d| of the network that step began with (it has stepped once since)
    last = state.order.view(state.steps_per_epoch, state.batch)[-1]
    with torch.no_grad():
        values = state.model(state.data.points[last]).numpy()
    np.testing.assert_allclose(errors[last.numpy()], np.abs(values - state.data.targets[last].numpy()), atol=2e-2)


def test_hkr_has_no_errors_to_focus_on(data):
    state = Trainer(data, SMALL, TrainingConfig(epochs=1, loss="hkr", error_focus=0.5)).start(log=False)
    assert state.errors is None


def test_the_error_focus_must_be_a_share():
    for share in (-0.1, 1.0):
        with pytest.raises(LipsdfError, match="error focus"):
            TrainingConfig(error_focus=share)


def test_a_focused_run_fits_a_circle_stays_1_lipschitz_and_resumes_to_the_same_weights(data, tmp_path):
    config = TrainingConfig(epochs=16, batch_size=1024, lr=5e-3, lam=10.0, error_focus=0.5, checkpoint_every=8)
    field = train(data, SMALL, config, output=tmp_path / "full.pt")
    x = np.random.default_rng(1).uniform(*data.normalization.world_bounds(), size=(20_000, 2))
    truth = np.linalg.norm(x - CENTER, axis=1) - RADIUS
    assert np.abs(field(x) - truth).mean() < 0.01 * 2 * np.sqrt(2) * RADIUS
    assert lipschitz_ratio(field, n_pairs=20_000) <= 1.0 + 1e-5

    class Interrupt(Callback):
        def on_checkpoint(self, trainer, field, epoch, last):
            if epoch == 8:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(data, SMALL, config, output=tmp_path / "cut.pt", callbacks=[Interrupt()]).run()
    saved_config, model, state = read_checkpoint(tmp_path / "cut.pt")
    resumed = Trainer(data, model, saved_config, output=tmp_path / "cut.pt", resume=state).run()
    np.testing.assert_array_equal(resumed(x), field(x))  # the errors came back with the checkpoint
