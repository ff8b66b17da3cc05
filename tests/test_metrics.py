"""Array metrics against brute force, and the typed metrics' JSON format."""

import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from lipsdf.metrics import (DistanceErrors, GradientStats, LipschitzCheck, Metrics, SurfaceMetrics, distance_errors,
                            normal_consistency, surface_distances)


def test_surface_distances_and_normal_consistency_match_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.random((300, 3)), rng.random((200, 3)) + 0.1
    na, nb = rng.normal(size=(300, 3)), rng.normal(size=(200, 3))
    na /= np.linalg.norm(na, axis=1, keepdims=True)
    nb /= np.linalg.norm(nb, axis=1, keepdims=True)
    pairwise = cdist(a, b)
    ab, ba = pairwise.min(axis=1), pairwise.min(axis=0)
    metrics = surface_distances(ab, ba)
    assert metrics["chamfer_l1"] == pytest.approx(0.5 * (ab.mean() + ba.mean()), rel=1e-9)
    assert metrics["chamfer_l2"] == pytest.approx(0.5 * ((ab ** 2).mean() + (ba ** 2).mean()), rel=1e-9)
    assert metrics["hausdorff"] == pytest.approx(max(ab.max(), ba.max()), rel=1e-9)
    consistency = 0.5 * (np.abs((na * nb[pairwise.argmin(axis=1)]).sum(1)).mean()
                         + np.abs((nb * na[pairwise.argmin(axis=0)]).sum(1)).mean())
    assert normal_consistency(a, na, b, nb) == pytest.approx(consistency, rel=1e-9)


def test_distance_errors_against_hand_computed_values():
    truth = np.array([-1.0, -0.5, 0.0, 0.5, 2.0])
    predicted = np.array([-0.9, 0.1, 0.0, 0.4, 2.5])
    errors = DistanceErrors.of(predicted, truth, signed=True, diagonal=10.0)
    assert errors.mae == pytest.approx((0.1 + 0.6 + 0 + 0.1 + 0.5) / 5)
    assert errors.max_error == pytest.approx(0.6)
    assert errors.sign_accuracy == 0.75  # the surface point (truth 0) has no side; -0.5 got the wrong one
    assert errors.mae_rel == pytest.approx(errors.mae / 10) and errors.n == 5
    unsigned = distance_errors(np.abs(truth), truth, signed=False)
    assert unsigned == {"mae": 0.0, "max_error": 0.0}


def test_metrics_json_keeps_the_eval_file_format():
    metrics = Metrics("unsigned", "sll", 3.0, {"all": DistanceErrors(0.1, 0.2, 7, None, 0.1 / 3, 0.2 / 3)}, 0.5, 0.01,
                      GradientStats(0.1, 0.5, 0.6, 1.0), LipschitzCheck(100, 0.9),
                      SurfaceMetrics(0.01, 0.001, 0.05, None, 0.01 / 3, 0.05 / 3, 0.001 / 9), 2.5)
    data = json.loads(metrics.to_json())
    assert list(data) == ["kind", "arch", "diagonal", "distance", "overestimate_fraction", "overestimate_max",
                          "gradient_norm", "lipschitz", "surface", "seconds"]
    assert list(data["distance"]["all"]) == ["mae", "max_error", "mae_rel", "max_error_rel", "n"]  # no sign: unsigned
    assert data["lipschitz"] == {"pairs": 100, "max_ratio": 0.9}
    assert list(data["surface"]) == ["chamfer_l1", "chamfer_l2", "hausdorff", "normal_consistency",
                                     "chamfer_l1_rel", "hausdorff_rel", "chamfer_l2_rel"]
    assert Metrics.from_dict(data) == metrics
    assert "normal consistency" not in metrics.table() and "Hausdorff" in metrics.table()
