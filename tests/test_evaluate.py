"""A field against its shape, checked on exact analytic fields whose ideal metrics are known."""

import json

import numpy as np
import pytest
import torch

from query.fields import analytic_field
from lipsdf.errors import LipsdfError
from lipsdf.evaluate import EvaluationConfig, evaluate_field, lipschitz_ratio
from lipsdf.field import NeuralField
from lipsdf.geometry.normalize import Normalization
from lipsdf.geometry.primitives import circle, helix, sphere
from lipsdf.geometry.shapes import PointCloud
from lipsdf.metrics import Metrics

SMALL = EvaluationConfig(n_uniform=4000, n_near=4000, n_pairs=20_000, n_surface=20_000)


def test_exact_circle_field_scores_perfectly():
    # The analytic SDF of the unit circle against a 4096-gon (sagitta 3e-7): every metric at its ideal value.
    metrics = evaluate_field(analytic_field("circle"), circle(1.0, n=4096), SMALL)
    for group in ("uniform", "near", "all"):
        assert metrics.distance[group].mae < 1e-5
        assert metrics.distance[group].max_error < 1e-5
        assert metrics.distance[group].sign_accuracy > 0.999
    assert metrics.overestimate_fraction < 0.01
    assert metrics.gradient_norm.median == pytest.approx(1.0, abs=1e-4)
    assert 0.99 < metrics.lipschitz.max_ratio <= 1 + 1e-9
    surface = metrics.surface
    spacing = 3.0 / 511
    assert surface.chamfer_l1 < 1e-3 * spacing  # marching squares on a circle: cell^2 / (8 r) at most
    assert surface.hausdorff < 0.01 * spacing
    assert surface.normal_consistency > 0.9999
    assert metrics.diagonal == pytest.approx(2 * np.sqrt(2), rel=1e-6)
    assert "Chamfer L1" in metrics.table()
    assert Metrics.from_dict(json.loads(metrics.to_json())) == metrics  # the JSON file reads back the same


def test_offset_field_errors_are_the_offset():
    # f = |x| - 1.05 against the unit circle: the error is 0.05 everywhere and |f| overestimates inside.
    field = analytic_field("circle", radius=1.05)
    metrics = evaluate_field(field, circle(1.0, n=4096), SMALL)
    assert metrics.distance["uniform"].mae == pytest.approx(0.05, abs=1e-4)
    surface = metrics.surface
    assert surface.chamfer_l1 == pytest.approx(0.05, abs=2e-3)
    assert surface.hausdorff == pytest.approx(0.05, abs=2e-3)
    # inside the unit circle |f| = 1.05 - |x| > 1 - |x|: the share of points inside
    points = np.random.default_rng(0).uniform(-1.5, 1.5, (100_000, 2))
    inside = (np.linalg.norm(points, axis=1) < 1).mean()
    assert metrics.overestimate_fraction > 0.5 * inside


def test_unsigned_field_contour_is_moved_onto_the_shape():
    truth = analytic_field("sphere", radius=1.0)
    unsigned = NeuralField(truth.module.model, truth.normalization, truth.model_config, kind="unsigned")
    metrics = evaluate_field(unsigned, sphere(1.0, n_theta=96, n_phi=192), SMALL)
    assert metrics.distance["all"].sign_accuracy is None
    assert metrics.distance["near"].mae < 1e-3  # the mesh's chordal error, about 5e-4
    # contoured at one grid cell (0.024) off the sphere, then stepped back onto it
    assert metrics.surface.chamfer_l1 < 1e-3
    assert metrics.surface.hausdorff < 2e-3
    assert metrics.surface.normal_consistency > 0.999


def test_point_cloud_distances_are_to_the_points():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(5000, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    truth = analytic_field("sphere", radius=1.0)
    unsigned = NeuralField(truth.module.model, truth.normalization, truth.model_config, kind="unsigned")
    metrics = evaluate_field(unsigned, PointCloud(points), SMALL)
    # |f| (distance to the sphere) never exceeds the distance to points on it
    assert metrics.overestimate_fraction == 0.0
    # near the surface the gap is about the points' spacing (5000 points on area 4 pi: about 0.05)
    assert 0.005 < metrics.distance["near"].mae < 0.05
    assert metrics.surface.normal_consistency > 0.95  # against PCA normals of the points


def test_lipschitz_ratio_catches_a_steep_field():
    linear = torch.nn.Linear(2, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[3.0, 4.0]]))
        linear.bias.zero_()
    field = NeuralField(torch.nn.Sequential(linear, torch.nn.Flatten(0)), Normalization(np.zeros(2), 2.0), {"arch": "mlp", "dim": 2})
    assert lipschitz_ratio(field, 20_000) == pytest.approx(5.0, rel=1e-3)


def test_trained_field_keeps_its_guarantee(trained_sphere):
    from query.fields import SPHERE_CENTER, SPHERE_RADIUS

    shape = sphere(SPHERE_RADIUS).transformed(lambda v: v + SPHERE_CENTER)
    metrics = evaluate_field(trained_sphere, shape, SMALL)
    assert metrics.lipschitz.max_ratio <= 1 + 1e-5
    assert metrics.gradient_norm.max <= 1 + 1e-4
    assert metrics.distance["uniform"].sign_accuracy > 0.95
    assert metrics.surface.chamfer_l1_rel < 0.02


def test_mismatched_inputs_are_clear_errors():
    with pytest.raises(LipsdfError, match="2D but the shape is 3D"):
        evaluate_field(analytic_field("circle"), sphere(), SMALL)
    with pytest.raises(LipsdfError, match="signed field needs a shape with an inside"):
        evaluate_field(analytic_field("sphere"), helix(), SMALL)
    with pytest.raises(LipsdfError, match="positive"):
        EvaluationConfig(n_pairs=0)
