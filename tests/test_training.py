"""Training: convergence against analytic distances, the loop's contract (logs, checkpoints, NaN guard, seeds)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from lipsdf.errors import LipsdfError, ModeError
from lipsdf.field import NeuralField
from lipsdf.geometry.primitives import circle, helix, sphere
from lipsdf.geometry.shapes import PointCloud
from lipsdf.losses import LOSSES
from lipsdf.render import PreviewWriter
from lipsdf.sampling import sample
from lipsdf.training import Trainer, TrainingConfig, TrainingDiverged, train

CENTER_2D, RADIUS_2D = np.array([40.0, -10.0]), 5.0  # world units far from the unit box
RADIUS_3D = 2.0
SMALL = {"layers": 6, "width": 32}
FAST = dict(epochs=30, batch_size=1024, lr=5e-3, lam=10.0, checkpoint_every=0)


def _circle_sdf(points):
    return np.linalg.norm(points - CENTER_2D, axis=1) - RADIUS_2D


def _sphere_sdf(points):
    return np.linalg.norm(points, axis=1) - RADIUS_3D


CASES = {
    "circle": (lambda: circle(RADIUS_2D, n=256, center=tuple(CENTER_2D)), _circle_sdf, 2 * np.sqrt(2) * RADIUS_2D),
    "sphere": (lambda: sphere(RADIUS_3D), _sphere_sdf, 2 * np.sqrt(3) * RADIUS_3D),
}


@pytest.mark.parametrize("arch", ["sll", "ortho"])
@pytest.mark.parametrize("case", ["circle", "sphere"])
def test_signed_hkr_converges_to_the_analytic_sdf(case, arch):
    make_shape, sdf, diagonal = CASES[case]
    data = sample(make_shape(), "signed", n=20_000, n_test=2_000, seed=0)
    layers = 6 if arch == "sll" else 4
    field = train(data, {"arch": arch, "layers": layers, "width": 32}, TrainingConfig(**FAST, loss="hkr"))
    rng = np.random.default_rng(1)
    lower, upper = data.normalization.world_bounds()
    x = rng.uniform(lower, upper, size=(20_000, data.dim))
    truth, values = sdf(x), field(x)
    assert np.abs(values - truth).mean() < 0.01 * diagonal
    far = np.abs(truth) > 0.02 * diagonal
    assert (np.sign(values[far]) == np.sign(truth[far])).mean() > 0.99
    assert (np.linalg.norm(field.gradient(x), axis=1) > 0.9).mean() > 0.9
    assert field.summary["final"]["mae_rel"] < 0.01  # the logged test error agrees


def test_default_recipe_fits_a_circle_accurately(tmp_path):
    """Pins `lipsdf fit`'s default recipe for an outline (SLL 20 x 48, fit-hinge, lr 1e-2 with Adam's beta2
    0.95, 3/4 of the points near the surface) at its quick budget, against the analytic distance of the
    circle."""
    from lipsdf.pipeline import fit

    make_shape, sdf, diagonal = CASES["circle"]
    result = fit(make_shape(), tmp_path, quick=True)
    assert result.field.summary["loss"] == "fit-hinge"
    assert (result.settings["model"]["layers"], result.settings["model"]["width"]) == (20, 48)
    x = np.random.default_rng(5).uniform(*result.field.normalization.world_bounds(), size=(20_000, 2))
    assert np.abs(result.field(x) - sdf(x)).mean() < 0.02 * diagonal
    assert np.median(np.linalg.norm(result.field.gradient(x), axis=1)) > 0.8
    assert result.metrics.surface.chamfer_l1_rel < 0.001
    assert result.metrics.lipschitz.max_ratio <= 1 + 1e-6


def test_fit_hinge_needs_distances():
    """A signed point cloud has estimated distances (fit-hinge), an unsigned one none (hKR)."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(500, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    signed = sample(PointCloud(points, normals=points), "signed", n=2000, n_test=400, seed=0)
    assert Trainer(signed, SMALL, TrainingConfig(epochs=1)).loss_name == "fit-hinge"
    data = sample(PointCloud(points, normals=points), "unsigned", n=2000, n_test=400, seed=0)
    assert Trainer(data, SMALL, TrainingConfig(epochs=1)).loss_name == "hkr"
    with pytest.raises(ModeError, match="exact distances"):
        Trainer(data, SMALL, TrainingConfig(epochs=1, loss="fit-hinge"))


def test_the_step_reads_nothing_back_from_the_device(monkeypatch):
    """No value crosses to the host inside a step (so a GPU never waits, and a CUDA graph can replay it)."""
    data = sample(CASES["circle"][0](), "signed", n=2_000, n_test=200, seed=0)
    for loss, optimiser in (("fit-hinge", "adam"), ("hkr", "adam"), ("fit-hinge", "muon")):
        trainer = Trainer(data, SMALL, TrainingConfig(epochs=2, batch_size=256, checkpoint_every=0, loss=loss,
                                                      optimiser=optimiser))
        run = trainer.start()

        def refuse(*args, **kwargs):
            raise AssertionError("a device value was read in the step")

        with monkeypatch.context() as patch:
            for name in ("item", "__float__", "__bool__", "__int__", "tolist", "cpu", "numpy"):
                patch.setattr(torch.Tensor, name, refuse)
            for _ in range(3):
                trainer.step(run)
        assert float(run.step_count) == 3


def test_schedules_are_tensor_arithmetic_with_the_documented_values():
    from lipsdf.training import Schedule

    paper = Schedule(TrainingConfig(epochs=40, recipe="paper", lam=100.0), total_steps=400, steps_per_epoch=10)
    assert [paper.values(step)["lam"] for step in (0, 20, 40, 399)] == pytest.approx([1.0, 10.0, 100.0, 100.0])
    assert paper.values(399)["margin"] == 0.01 and paper.values(399)["lr_factor"] == 1.0
    assert TrainingConfig(recipe="paper").learning_rate == 5e-4 and TrainingConfig().learning_rate == 5e-3
    ours = Schedule(TrainingConfig(epochs=40, margin=0.01, lam=100.0), total_steps=400, steps_per_epoch=10)
    assert ours.values(0)["lam"] == pytest.approx(1.0) and ours.values(320)["lam"] == pytest.approx(100.0)
    assert ours.values(320)["margin"] == pytest.approx(0.0025) and ours.values(0)["lr_factor"] == pytest.approx(1.0)
    assert ours.values(400)["lr_factor"] == pytest.approx(0.02)


def test_unsigned_fields_keep_a_constant_margin_and_signed_ones_shrink_it():
    from lipsdf.training import Schedule

    def margin(kind, step, **config):
        return Schedule(TrainingConfig(epochs=40, **config), 400, 10, kind).values(step)["margin"]

    assert margin("unsigned", 0) == margin("unsigned", 399) == pytest.approx(0.02)
    assert margin("unsigned", 399, margin=0.03) == pytest.approx(0.03)
    assert margin("unsigned", 399, final_margin=0.01) == pytest.approx(0.01)
    assert margin("unsigned", 399, recipe="paper") == margin("signed", 399, recipe="paper") == 0.01
    assert margin("signed", 0) == pytest.approx(0.01) and margin("signed", 399) == pytest.approx(0.0025)
    with pytest.raises(LipsdfError, match="final margin"):
        TrainingConfig(margin=0.01, final_margin=0.02)
    # a default margin depends on the field's kind: 0.015 ends an unsigned field's 0.02, but not a signed 0.01
    assert margin("unsigned", 399, final_margin=0.015) == pytest.approx(0.015)
    data = sample(CASES["circle"][0](), "signed", n=2_000, n_test=200, seed=0)
    with pytest.raises(LipsdfError, match="final margin"):
        Trainer(data, SMALL, TrainingConfig(**dict(FAST, final_margin=0.015)))


def test_unsigned_fit_puts_its_zero_level_on_the_shape():
    """The network rounds the crease of |d| off above zero; the field's offset moves it back onto the
    shape, and the result is still a 1-Lipschitz, non-negative fit of the analytic unsigned distance."""
    from lipsdf.evaluate import lipschitz_ratio

    make_shape, sdf, diagonal = CASES["circle"]
    data = sample(make_shape(), "unsigned", n=20_000, n_test=2_000, seed=0)
    field = train(data, SMALL, TrainingConfig(**FAST))
    assert field.summary["loss"] == "fit-hinge" and -0.02 / 4 <= field.offset < 0  # at most a quarter of the margin
    angles = np.random.default_rng(3).uniform(0, 2 * np.pi, 5_000)
    on_circle = CENTER_2D + RADIUS_2D * np.column_stack([np.cos(angles), np.sin(angles)])
    assert np.median(field(on_circle)) < 0.002 * diagonal
    rng = np.random.default_rng(4)
    radii = RADIUS_2D + rng.uniform(-0.05, 0.05, 5_000) * diagonal  # within 5% of the diagonal of it
    near = CENTER_2D + radii[:, None] * np.column_stack([np.cos(angles), np.sin(angles)])
    values = field(near)
    assert values.min() >= 0 and np.abs(values - np.abs(sdf(near))).mean() < 0.015 * diagonal
    assert lipschitz_ratio(field, n_pairs=20_000) <= 1 + 1e-9


def test_signed_fit_puts_its_zero_level_on_the_shape():
    """The lipsdf recipe shifts a signed field so that it is zero, in the median, on the shape's surface;
    the paper's recipe leaves the network as trained."""
    make_shape, sdf, diagonal = CASES["circle"]
    data = sample(make_shape(), "signed", n=20_000, n_test=2_000, seed=0)
    angles = np.random.default_rng(3).uniform(0, 2 * np.pi, 5_000)
    on_circle = CENTER_2D + RADIUS_2D * np.column_stack([np.cos(angles), np.sin(angles)])
    field = train(data, SMALL, TrainingConfig(**FAST))
    assert field.offset != 0 and abs(np.median(field(on_circle))) < 2e-4 * diagonal
    assert abs(np.median(sdf(on_circle))) < 1e-12  # the truth it stands for
    paper = train(data, SMALL, TrainingConfig(**dict(FAST, recipe="paper", loss="hkr", epochs=2)))
    assert paper.offset == 0


def test_bf16_precision_trains_in_bfloat16_then_polishes_in_float32():
    """Under ``bf16`` the network's products run in bfloat16 for the first 3/4 of the steps and in float32
    after; the field is as accurate as the float32 one and as 1-Lipschitz."""
    from lipsdf.evaluate import lipschitz_ratio
    from lipsdf.nn.layers import UnitNormLinear

    make_shape, sdf, diagonal = CASES["circle"]
    data = sample(make_shape(), "signed", n=20_000, n_test=2_000, seed=0)
    seen = []  # the dtype of the features the output layer gets, at each training step
    original = UnitNormLinear.forward

    def recording(self, x):
        if torch.is_grad_enabled():  # training steps, not the epoch-end evaluations
            seen.append(x.dtype)
        return original(self, x)

    config = TrainingConfig(**FAST, matmul_precision="bf16")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(UnitNormLinear, "forward", recording)
        field = train(data, SMALL, config)
    steps = FAST["epochs"] * 20
    assert seen == [torch.bfloat16] * (steps * 3 // 4) + [torch.float32] * (steps // 4)
    x = np.random.default_rng(1).uniform(*data.normalization.world_bounds(), size=(20_000, 2))
    reference = train(data, SMALL, TrainingConfig(**FAST))
    assert np.abs(field(x) - sdf(x)).mean() < 1.5 * np.abs(reference(x) - sdf(x)).mean() + 1e-3 * diagonal
    assert np.abs(field(x) - sdf(x)).mean() < 0.01 * diagonal
    assert lipschitz_ratio(field, n_pairs=20_000) <= 1 + 1e-9


def test_mlp_with_eikonal_term_fits_known_distances():
    make_shape, sdf, diagonal = CASES["circle"]
    data = sample(make_shape(), "dist", n=20_000, n_test=2_000, seed=0)
    field = train(data, {"arch": "mlp", "layers": 3, "width": 64, "activation": "softplus"},
                  TrainingConfig(**dict(FAST, lr=2e-3, eikonal=0.1)))
    x = np.random.default_rng(2).uniform(*data.normalization.world_bounds(), size=(10_000, 2))
    assert np.abs(field(x) - sdf(x)).mean() < 0.01 * diagonal
    assert not field.is_lipschitz


def test_sald_learns_a_signed_field_from_unsigned_data():
    make_shape, sdf, diagonal = CASES["sphere"]
    data = sample(make_shape(), "sal", n=20_000, n_test=2_000, seed=0)
    trainer = Trainer(data, None, TrainingConfig(**dict(FAST, lr=1e-3)))
    assert trainer.loss_name == "sald" and trainer.model_config["arch"] == "mlp"
    trainer.model_config.update(layers=3, width=64)
    field = trainer.run()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10_000, 3)) * 0.3 * RADIUS_3D + rng.normal(size=(10_000, 3)) * RADIUS_3D * 0.3
    assert np.abs(field(x) - sdf(x)).mean() < 0.02 * diagonal


def test_unsigned_hkr_gives_a_non_negative_distance_to_an_open_curve():
    shape = helix()
    data = sample(shape, "unsigned", n=20_000, n_test=2_000, seed=0)
    field = train(data, SMALL, TrainingConfig(**FAST, loss="hkr"))
    assert field.kind == "unsigned"
    points, truth = data.world("test_points"), np.abs(data.world("test_distances"))
    values = field(points)
    assert values.min() >= 0
    diagonal = field.summary["diagonal"]
    assert np.abs(values - truth).mean() < 0.03 * diagonal


def test_world_units_and_logs(tmp_path):
    make_shape, sdf, diagonal = CASES["circle"]
    data = sample(make_shape(), "signed", n=4_000, n_test=1_000, seed=0)
    out, log = tmp_path / "c.pt", tmp_path / "c.jsonl"
    config = TrainingConfig(epochs=4, batch_size=1000, checkpoint_every=2)
    field = train(data, SMALL, config, output=out, log=log, callbacks=[PreviewWriter(tmp_path / "c.png")])
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    for key in ("loss", "mae", "max_error", "sign_accuracy", "seconds", "lam", "margin", "lr"):
        assert key in records[-1]
    # the logged test error is the error against the dataset's (world-unit) ground truth
    truth = data.world("test_distances")
    assert records[-1]["mae"] == pytest.approx(np.abs(field(data.world("test_points")) - truth).mean(), rel=1e-5)
    loaded = NeuralField.load(out)
    assert loaded.summary["complete"] and loaded.summary["epochs"] == 4
    for name in ("c.png", "c_e0002.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    csv_log = tmp_path / "c.csv"
    train(data, SMALL, TrainingConfig(epochs=2, batch_size=1000, checkpoint_every=0), log=csv_log)
    lines = csv_log.read_text().splitlines()
    assert lines[0].startswith("epoch,step,loss") and len(lines) == 3


def test_same_seed_same_field_and_other_seed_another():
    data = sample(circle(), "signed", n=2_000, n_test=200, seed=0)
    config = TrainingConfig(epochs=2, batch_size=500, checkpoint_every=0)
    x = np.random.default_rng(0).normal(size=(100, 2))
    a, b = (train(data, SMALL, config)(x) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    c = train(data, SMALL, TrainingConfig(epochs=2, batch_size=500, checkpoint_every=0, seed=1))(x)
    assert not np.allclose(a, c)


def test_divergence_stops_with_a_clear_error_and_keeps_the_last_good_field(tmp_path, monkeypatch):
    data = sample(circle(), "signed", n=2_000, n_test=200, seed=0)
    out = tmp_path / "f.pt"
    calls = {"n": 0}
    original = LOSSES["hkr"]

    def loss_that_blows_up_in_epoch_3(model, batch):
        calls["n"] += 1
        loss = original.objective(model, batch)
        return loss * float("nan") if calls["n"] > 8 else loss  # 4 steps per epoch

    monkeypatch.setitem(LOSSES, "hkr", dataclasses.replace(original, objective=loss_that_blows_up_in_epoch_3))
    config = TrainingConfig(epochs=5, batch_size=500, checkpoint_every=0, loss="hkr")
    with pytest.raises(TrainingDiverged, match="diverged at epoch 3.*kept the field of epoch 2"):
        train(data, SMALL, config, output=out)
    field = NeuralField.load(out)
    assert field.summary["epochs"] == 2 and not field.summary["complete"]
    assert np.isfinite(field(np.random.default_rng(0).normal(size=(100, 2)))).all()
    assert all(torch.isfinite(p).all() for p in field.module.model.parameters())


def test_nan_from_the_first_epoch_writes_nothing(tmp_path):
    data = sample(circle(), "signed", n=2_000, n_test=200, seed=0)
    data.arrays["points"][5] = np.nan
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        train(data, SMALL, TrainingConfig(epochs=2, batch_size=500), output=tmp_path / "f.pt")
    assert list(tmp_path.iterdir()) == []


def test_loss_must_fit_the_dataset_mode():
    signed = sample(circle(), "signed", n=1_000, n_test=100, seed=0)
    with pytest.raises(ModeError, match="sald loss trains on sal datasets"):
        Trainer(signed, SMALL, TrainingConfig(loss="sald"))
    with pytest.raises(ModeError, match="fit loss trains on dist datasets"):
        Trainer(signed, SMALL, TrainingConfig(loss="fit"))
    open_curve = sample(helix(), "sal", n=1_000, n_test=100, seed=0)
    with pytest.raises(ModeError, match="surface normals"):
        Trainer(open_curve, SMALL, TrainingConfig(loss="sald"))
    assert Trainer(open_curve, SMALL).loss_name == "sal"  # sald by default, sal when there are no normals
    with pytest.raises(LipsdfError, match="3D input"):
        Trainer(signed, dict(SMALL, arch="sll", dim=3))


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(lr=-1.0), dict(final_margin=0.5), dict(recipe="fast"),
                                 dict(adam_beta2=1.0)])
def test_bad_training_options_are_clear_errors(bad):
    with pytest.raises(LipsdfError):
        TrainingConfig(**bad)


def test_adam_beta2_reaches_the_optimiser(tmp_path):
    data = sample(CASES["circle"][0](), "signed", n=2_000, n_test=200, seed=0)
    config = TrainingConfig(epochs=2, batch_size=256, checkpoint_every=0, adam_beta2=0.95)
    assert Trainer(data, SMALL, config).start().optimiser.param_groups[0]["betas"] == (0.9, 0.95)
    x = np.random.default_rng(0).uniform(-1, 1, size=(500, 2))
    short_memory = train(data, SMALL, config)(x)
    assert not np.allclose(short_memory, train(data, SMALL, dataclasses.replace(config, adam_beta2=0.999))(x))
    np.testing.assert_array_equal(short_memory, train(data, SMALL, config)(x))  # and nothing else changed


def test_compiled_training_converges_and_saves_a_plain_field(tmp_path):
    make_shape, sdf, diagonal = CASES["circle"]
    data = sample(make_shape(), "signed", n=20_000, n_test=2_000, seed=0)
    field = train(data, SMALL, TrainingConfig(**dict(FAST, compile=True)), output=tmp_path / "c.pt")
    x = np.random.default_rng(4).uniform(*data.normalization.world_bounds(), size=(10_000, 2))
    assert np.abs(field(x) - sdf(x)).mean() < 0.01 * diagonal
    assert all(not key.startswith("_orig_mod") for key in torch.load(tmp_path / "c.pt")["weights"])
    np.testing.assert_allclose(NeuralField.load(tmp_path / "c.pt")(x), field(x), atol=1e-6)


def test_compile_refuses_losses_with_second_derivatives():
    data = sample(CASES["circle"][0](), "dist", n=2_000, n_test=200, seed=0)
    with pytest.raises(LipsdfError, match="eikonal"):
        train(data, {"arch": "mlp", "layers": 2, "width": 8}, TrainingConfig(epochs=1, compile=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
@pytest.mark.parametrize("loss", ["fit-hinge", "hkr"])
def test_the_cuda_graph_step_trains_as_the_eager_step_does(loss):
    """Replaying the captured step gives the weights that eager steps give (same seed, same data)."""
    data = sample(circle(), "signed", n=4_000, n_test=200, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, size=(500, 2))
    fields = [train(data, SMALL, TrainingConfig(epochs=3, batch_size=512, checkpoint_every=0, loss=loss,
                                                cuda_graph=graph), device="cuda") for graph in (False, True)]
    eager, graphed = (field(x) for field in fields)
    np.testing.assert_allclose(graphed, eager, atol=1e-4)
