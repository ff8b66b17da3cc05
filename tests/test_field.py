"""NeuralField: world units through the normalisation, the Lipschitz bound there, files, devices."""

import pickle

import numpy as np
import pytest
import torch

from lipsdf.errors import InputFileError, LipsdfError
from lipsdf.field import NeuralField
from lipsdf.geometry.normalize import Normalization
from lipsdf.nn import build_model

N = 100_000


def _field(arch, dim=3, trained=False, normalization=None, seed=0):
    torch.manual_seed(seed)
    config = {"arch": arch, "dim": dim, "layers": 6, "width": 32}
    model = build_model(config)
    if trained:  # push the weights away from their initialisation
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(20):
            x = torch.rand(512, dim) * 2 - 1
            loss = -(model(x) * torch.sign(x.norm(dim=1) - 0.5)).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    normalization = normalization or Normalization(np.array([30.0, -20.0, 5.0][:dim]), 7.5)
    return NeuralField(model, normalization, config)


@pytest.mark.parametrize("arch", ["sll", "ortho"])
@pytest.mark.parametrize("trained", [False, True], ids=["init", "trained"])
def test_world_field_is_1_lipschitz(arch, trained):
    field = _field(arch, trained=trained)
    rng = np.random.default_rng(1)
    lower, upper = field.normalization.world_bounds()
    x = rng.uniform(lower - 5, upper + 5, size=(N, 3))
    y = x + rng.normal(size=(N, 3)) * rng.uniform(0, 10, size=(N, 1))
    assert np.linalg.norm(field.gradient(x), axis=1).max() <= 1 + 1e-4
    ratio = np.abs(field(x) - field(y)) / np.linalg.norm(x - y, axis=1)
    assert ratio.max() <= 1 + 1e-5


def test_world_values_are_the_unit_network_scaled():
    """f_world(x) = scale * g((x - center) / scale): checked against the raw network."""
    field = _field("sll", trained=True)
    x = np.random.default_rng(2).normal(size=(1000, 3)) * 10 + 30
    with torch.no_grad():
        unit = torch.as_tensor(field.normalization.to_unit(x), dtype=torch.float32)
        expected = 7.5 * field.module.model(unit).double().numpy()
    np.testing.assert_allclose(field(x), expected, rtol=1e-5, atol=1e-5)
    # the gradient matches central differences of the world field itself
    h = 1e-2
    numeric = np.stack([(field(x + h * e) - field(x - h * e)) / (2 * h) for e in np.eye(3)], axis=1)
    assert np.median(np.abs(numeric - field.gradient(x))) < 1e-3


def test_batch_size_does_not_change_values():
    field = _field("ortho", dim=2)
    x = np.random.default_rng(3).uniform(-50, 50, size=(1001, 2))
    np.testing.assert_allclose(field(x, batch_size=100), field(x), rtol=0, atol=1e-5)  # float32 GEMM blocking
    np.testing.assert_allclose(field.gradient(x, batch_size=7), field.gradient(x), atol=1e-6)


def test_unsigned_field_is_non_negative_and_shifted_by_its_offset():
    torch.manual_seed(0)
    config = {"arch": "sll", "dim": 2, "layers": 2, "width": 8}
    model = build_model(config)
    plain = NeuralField(model, Normalization.identity(2), config)
    x = np.random.default_rng(4).normal(size=(500, 2))
    raw = plain(x)
    unsigned = NeuralField(build_model(config), Normalization.identity(2), config, kind="unsigned", offset=0.25)
    unsigned.module.model.load_state_dict(plain.module.model.state_dict())
    unsigned.module.model.freeze()
    np.testing.assert_allclose(unsigned(x), np.abs(raw + 0.25), atol=1e-6)


def test_save_and_load_round_trip(tmp_path):
    field = _field("sll", trained=True)
    field.metadata = {"kind": "mesh", "source": {"path": "bunny.obj"}}
    field.summary = {"epochs": 3, "final": {"mae": 0.1}}
    path = field.save(tmp_path / "f.pt")
    state = torch.load(path, weights_only=True)  # plain tensors and values only
    assert state["format"] == "lipsdf-field"
    loaded = NeuralField.load(path)
    x = np.random.default_rng(5).normal(size=(2000, 3)) * 10
    np.testing.assert_array_equal(loaded(x), field(x))
    assert loaded.metadata == field.metadata and loaded.summary == field.summary
    np.testing.assert_array_equal(loaded.normalization.center, field.normalization.center)
    assert loaded.normalization.scale == field.normalization.scale
    assert loaded.model_config == field.model_config and loaded.kind == "signed"


def test_loading_never_unpickles_arbitrary_objects(tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pt"
    for writer in (lambda: evil.write_bytes(pickle.dumps({"format": "lipsdf-field", "x": Payload()})),
                   lambda: torch.save({"format": "lipsdf-field", "x": Payload()}, evil)):
        writer()
        with pytest.raises(InputFileError, match="not a readable lipsdf field"):
            NeuralField.load(evil)
    assert "must never run" not in capsys.readouterr().out
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputFileError):
        NeuralField.load(tmp_path / "junk.pt")
    torch.save({"something": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputFileError, match="not a lipsdf field"):
        NeuralField.load(tmp_path / "other.pt")
    with pytest.raises(InputFileError, match="no such field"):
        NeuralField.load(tmp_path / "missing.pt")


def test_bad_points_and_paths_are_clear_errors(tmp_path):
    field = _field("sll", dim=2)
    with pytest.raises(LipsdfError, match=r"shape \(n, 2\)"):
        field(np.zeros((4, 3)))
    with pytest.raises(InputFileError, match=".pt"):
        field.save(tmp_path / "f.npz")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_gives_the_cpu_values():
    field = _field("sll", trained=True)
    x = np.random.default_rng(6).normal(size=(5000, 3)) * 10
    cpu = field(x)
    np.testing.assert_allclose(field.to("cuda")(x), cpu, atol=1e-4)


def test_values_gradients_and_normals_in_world_and_unit_coordinates():
    # The analytic sphere SDF through a normalisation: exact values, unit normals pointing away from the centre.
    from query.fields import analytic_field

    field = analytic_field("sphere", radius=1.0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.5, 1.5, size=(1000, 3))
    x = x[np.linalg.norm(x, axis=1) > 0.1]
    np.testing.assert_allclose(field(x), np.linalg.norm(x, axis=1) - 1.0, atol=1e-6)
    np.testing.assert_allclose(field.normals(x), x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-5)
    unit = field.normalization.to_unit(x)
    np.testing.assert_allclose(field(unit, unit=True) * field.normalization.scale, field(x), atol=1e-6)
    np.testing.assert_allclose(field.gradient(unit, unit=True), field.gradient(x), atol=1e-6)


def test_double_is_the_same_field_in_float64():
    field = _field("sll", trained=True)
    twin = field.double()
    x = torch.rand(100, 3, dtype=torch.float64) * 2 - 1
    values = twin.unit_values(x)
    assert values.dtype == torch.float64
    np.testing.assert_allclose(values.numpy(), field.unit_values(x.float()).double().numpy(), atol=1e-5)
    assert next(field.module.parameters()).dtype == torch.float32  # the original is untouched
