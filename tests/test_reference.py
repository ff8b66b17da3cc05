"""Measuring a scan's field against the true surface: ``eval --reference`` and ``fit --reference``."""

import json

import numpy as np
import pytest

from lipsdf.cli import main
from lipsdf.field import NeuralField
from lipsdf.geometry.io import save_shape
from lipsdf.geometry.shapes import PointCloud

EVAL = ["--n-uniform", "20000", "--n-near", "2000", "--pairs", "2000", "--n-surface", "5000"]


@pytest.fixture(scope="module")
def sparse_sphere_fit(tmp_path_factory):
    """A signed field fitted to 400 points of the unit sphere (spacing about 0.18), evaluated against the
    analytic sphere's mesh."""
    folder = tmp_path_factory.mktemp("scan")
    rng = np.random.default_rng(0)
    points = rng.normal(size=(400, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    save_shape(PointCloud(points, normals=points), folder / "scan.xyz")
    code = main(["fit", str(folder / "scan.xyz"), "--reference", "builtin:sphere", "-o", str(folder / "fit"),
                 "--epochs", "30", "-n", "8000", "--n-test", "500", "--res", "48", "--image-size", "32",
                 "--eval-pairs", "2000", "--eval-n-surface", "5000", "-q"])
    assert code == 0
    return folder


def _analytic_mae(field: NeuralField, n: int = 20_000) -> float:
    x = np.random.default_rng(7).uniform(*field.normalization.world_bounds(), size=(n, 3))
    return float(np.abs(field(x) - (np.linalg.norm(x, axis=1) - 1.0)).mean())


def test_fit_with_a_reference_is_measured_against_it(sparse_sphere_fit):
    metrics = json.loads((sparse_sphere_fit / "fit" / "metrics.json").read_text())
    assert metrics["settings"]["reference"] == "builtin:sphere"
    assert metrics["diagonal"] == pytest.approx(2 * np.sqrt(3), rel=1e-3)  # the sphere's box, not the points'
    field = NeuralField.load(sparse_sphere_fit / "fit" / "scan.pt")
    assert metrics["distance"]["uniform"]["mae"] == pytest.approx(_analytic_mae(field), rel=0.05)


def test_eval_reference_agrees_with_the_analytic_distance_and_the_points_floor_the_chamfer(sparse_sphere_fit,
                                                                                           capsys):
    field_path = sparse_sphere_fit / "fit" / "scan.pt"
    assert main(["eval", str(field_path), "--reference", "builtin:sphere", *EVAL,
                 "-o", str(sparse_sphere_fit / "true.json")]) == 0
    assert "note:" not in capsys.readouterr().out
    assert main(["eval", str(field_path), "--reference", str(sparse_sphere_fit / "scan.xyz"), *EVAL,
                 "-o", str(sparse_sphere_fit / "points.json")]) == 0
    printed = capsys.readouterr().out
    assert "note: measured against the points themselves" in printed and "a mesh of the true surface" in printed
    true = json.loads((sparse_sphere_fit / "true.json").read_text())
    points = json.loads((sparse_sphere_fit / "points.json").read_text())
    assert true["reference"] == "builtin:sphere"
    # against the sphere: the analytic distance's error, sampled on other points
    assert true["distance"]["uniform"]["mae"] == pytest.approx(_analytic_mae(NeuralField.load(field_path)), rel=0.05)
    # against 400 points 0.18 apart, a contour on the sphere still scores their spacing
    assert points["surface"]["chamfer_l1"] > 2 * true["surface"]["chamfer_l1"]


def test_a_reference_of_another_dimension_is_a_clear_error(tmp_path, capsys):
    code = main(["fit", "builtin:sphere", "--reference", "builtin:circle", "-o", str(tmp_path / "out"),
                 "--epochs", "1", "-q"])
    assert code == 2
    assert "the reference builtin:circle is 2D but the shape is 3D" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
