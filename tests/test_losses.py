"""Losses against hand-computed values and analytic distance functions."""

import numpy as np
import pytest
import torch

from lipsdf.errors import LipsdfError
from lipsdf.losses import (LOSSES, default_loss, losses_for, sign_hinge_loss, distance_fit_loss, eikonal_loss, hkr_loss, input_gradient, sal_loss,
                           sald_gradient_loss)


def test_hkr_matches_its_formula_on_random_data():
    rng = np.random.default_rng(0)
    values, labels = rng.normal(size=1000), rng.choice([-1.0, 1.0], size=1000)
    margin, lam = 0.05, 30.0
    expected = np.mean(-labels * values) + lam * np.mean(np.maximum(0.0, margin - labels * values))
    got = hkr_loss(torch.tensor(values), torch.tensor(labels), margin, lam)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_hkr_prefers_the_signed_distance_to_a_flatter_field():
    """Among fields with the right zero set, the KR term rewards the steepest 1-Lipschitz one: the distance."""
    x = torch.linspace(-1, 1, 2001)[:, None]
    labels = torch.sign(x[:, 0].abs() - 0.5)  # inside |x| < 0.5
    sdf = x[:, 0].abs() - 0.5
    assert hkr_loss(sdf, labels, 0.01, 100.0) < hkr_loss(0.5 * sdf, labels, 0.01, 100.0)
    assert hkr_loss(sdf, labels, 0.01, 100.0) < hkr_loss(-sdf, labels, 0.01, 100.0)


def test_eikonal_is_zero_for_an_analytic_distance_and_not_for_a_scaled_one():
    points = (torch.rand(500, 3, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    sdf = points.norm(dim=1) - 0.5
    assert float(eikonal_loss(input_gradient(sdf, points)).detach()) == pytest.approx(0.0, abs=1e-20)
    doubled = 2 * (points.norm(dim=1) - 0.5)
    assert float(eikonal_loss(input_gradient(doubled, points)).detach()) == pytest.approx(1.0, rel=1e-12)


def test_input_gradient_stays_differentiable():
    w = torch.tensor(2.0, requires_grad=True)
    x = torch.ones(4, 2, requires_grad=True)
    loss = eikonal_loss(input_gradient(w * x.sum(dim=1), x))  # |grad| = w sqrt(2)
    (dw,) = torch.autograd.grad(loss, w)
    assert float(dw) == pytest.approx(2 * (2 * np.sqrt(2) - 1) * np.sqrt(2))


def test_sal_and_sald_are_sign_agnostic():
    d = torch.tensor([0.1, 0.2, 0.3])
    assert float(sal_loss(d, d)) == float(sal_loss(-d, d)) == 0.0
    assert float(sal_loss(d + 0.1, d)) == pytest.approx(0.1)
    normals = torch.nn.functional.normalize(torch.randn(10, 3), dim=1)
    assert float(sald_gradient_loss(normals, normals)) == float(sald_gradient_loss(-normals, normals)) == 0.0
    assert float(sald_gradient_loss(torch.zeros(10, 3), normals)) == pytest.approx(1.0)


def test_distance_fit_norms():
    values, truth = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([0.0, 0.0, 0.0])
    assert float(distance_fit_loss(values, truth, "l1")) == pytest.approx(1.0)
    assert float(distance_fit_loss(values, truth, "mse")) == pytest.approx(5.0 / 3.0)
    with pytest.raises(LipsdfError, match="l1 or mse"):
        distance_fit_loss(values, truth, "huber")


def test_sign_hinge_is_zero_at_the_exact_distance_and_charges_wrong_signs_near_the_surface():
    torch.manual_seed(0)
    d = torch.randn(10_000) * 0.1
    assert float(sign_hinge_loss(d, d, margin=0.01)) == 0.0
    assert float(sign_hinge_loss(d.abs(), d.abs(), margin=0.01)) == 0.0  # unsigned distances
    flipped = -d
    expected = torch.relu(torch.clamp(d.abs(), max=0.01) + d.abs()).mean()  # a wrong sign costs |d| + min(m, |d|)
    torch.testing.assert_close(sign_hinge_loss(flipped, d, margin=0.01), expected)


def test_default_loss_follows_the_data_and_the_network():
    assert default_loss("signed") == default_loss("unsigned") == default_loss("dist") == "fit-hinge"
    assert default_loss("signed", distances=False) == "hkr"  # a point cloud: labels only
    assert default_loss("dist", lipschitz=False) == "fit"  # the baselines keep the eikonal term
    assert "fit-hinge" not in losses_for("signed", distances=False)
    assert LOSSES["hkr"].targets == "labels" and LOSSES["fit-hinge"].targets == "distances"
