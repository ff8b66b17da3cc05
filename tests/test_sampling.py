import numpy as np
import pytest

from conftest import box_sdf, torus_sdf
from lipsdf.errors import LipsdfError, ModeError
from lipsdf.geometry.io import load_shape
from lipsdf.geometry.primitives import box, circle, helix, rectangle, torus
from lipsdf.geometry.shapes import PointCloud
from lipsdf.sampling import SamplingConfig, sample

SMALL = dict(n=4000, n_test=800, seed=0)


def test_signed_labels_are_balanced_and_match_the_analytic_inside():
    data = sample(circle(1.0, 1024), "signed", **SMALL)
    assert data.points.shape == (4000, 2)
    assert (data.labels == -1).sum() == (data.labels == 1).sum() == 2000
    radius = np.linalg.norm(data.world("points"), axis=1)
    clear = np.abs(radius - 1.0) > 1e-4
    assert np.all((data.labels[clear] == -1) == (radius[clear] < 1.0))


def test_signed_samples_cover_box_and_surface():
    data = sample(torus(), "signed", n=10000, n_test=800, seed=0, uniform_fraction=0.5)
    distance = np.abs(torus_sdf(data.world("points"), 1.0, 0.35))
    assert np.mean(distance < 0.05) > 0.4        # near-surface half
    assert np.all(np.abs(data.points) <= 1.0)     # everything inside the unit box


def test_dist_mode_distances_are_exact():
    data = sample(box((2.0, 1.0, 1.0)), "dist", **SMALL)
    expected = box_sdf(data.world("points"), np.array([1.0, 0.5, 0.5]))
    np.testing.assert_allclose(data.world("distances"), expected, atol=1e-5 * data.normalization.scale)


def test_signed_mode_keeps_exact_distances_that_agree_with_the_labels():
    data = sample(box((2.0, 1.0, 1.0)), "signed", **SMALL)
    expected = box_sdf(data.world("points"), np.array([1.0, 0.5, 0.5]))
    np.testing.assert_allclose(data.world("distances"), expected, atol=1e-5 * data.normalization.scale)
    assert np.all(np.sign(data.distances[data.distances != 0]) == data.labels[data.distances != 0])


def test_unsigned_mode_keeps_exact_unsigned_distances():
    data = sample(rectangle(2.0, 1.0), "unsigned", **SMALL)
    expected = np.abs(box_sdf(data.world("points"), np.array([1.0, 0.5])))
    np.testing.assert_allclose(data.world("distances"), expected, atol=1e-5)
    assert np.all(data.distances[data.labels == -1] == 0)


def test_point_clouds_have_labels_and_estimated_distances_in_signed_mode_only():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(500, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    data = sample(PointCloud(points, normals=points), "signed", n=2000, n_test=400, seed=0)
    assert "labels" in data.arrays and "distances" in data.arrays
    far = np.abs(np.linalg.norm(data.world("points"), axis=1) - 1) > 0.05
    assert np.array_equal(np.sign(data.distances[far]), data.labels[far].astype(float))
    unsigned = sample(PointCloud(points, normals=points), "unsigned", n=2000, n_test=400, seed=0)
    assert "distances" not in unsigned.arrays


def test_unsigned_mode_separates_surface_from_elsewhere():
    data = sample(helix(), "unsigned", **SMALL)
    assert (data.labels == -1).sum() == 2000
    assert "surface_normals" not in data.arrays  # a 3D curve has no normal


def test_sal_mode_has_unsigned_distances_and_normals():
    data = sample(rectangle(2.0, 1.0), "sal", **SMALL)
    expected = np.abs(box_sdf(data.world("points"), np.array([1.0, 0.5])))
    np.testing.assert_allclose(data.world("distances"), expected, atol=1e-5)
    normals = data.surface_normals
    on_right_side = data.world("surface_points")[:, 0] > 1.0 - 1e-6
    np.testing.assert_allclose(normals[on_right_side], [[1.0, 0.0]] * int(on_right_side.sum()), atol=1e-6)


def test_test_set_has_true_signed_distances_in_three_regions():
    data = sample(rectangle(2.0, 1.0), "signed", **SMALL)
    expected = box_sdf(data.world("test_points"), np.array([1.0, 0.5]))
    np.testing.assert_allclose(data.world("test_distances"), expected, atol=1e-5)
    assert set(np.unique(data.test_region)) == {0, 1, 2}
    assert np.all(data.test_distances[data.test_region == 2] == 0)


def test_same_seed_same_dataset_other_seed_other_dataset():
    a = sample(circle(), "signed", **SMALL)
    b = sample(circle(), "signed", **SMALL)
    c = sample(circle(), "signed", **{**SMALL, "seed": 1})
    for key in a.arrays:
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key])
    assert not np.array_equal(a.points, c.points)


def test_ambiguity_band_drops_points_of_intermediate_winding_number():
    from lipsdf.geometry.distance import GroundTruth

    # An open hemisphere-like surface: a torus cut in half has winding numbers all over (0, 1).
    mesh = torus()
    half = mesh.faces[mesh.vertices[mesh.faces].mean(axis=1)[:, 0] > 0]
    from lipsdf.geometry.shapes import TriangleMesh

    open_mesh = TriangleMesh(mesh.vertices, half)
    data = sample(open_mesh, "signed", n=4000, n_test=800, seed=0, band=(0.3, 0.7))
    w = GroundTruth(open_mesh).winding_number(data.world("points"))
    assert np.all((w <= 0.3) | (w >= 0.7))


def test_modes_that_make_no_sense_are_refused():
    with pytest.raises(ModeError, match="unsigned"):
        sample(helix(), "signed", **SMALL)
    cloud = PointCloud(np.random.default_rng(0).normal(size=(200, 3)))
    with pytest.raises(ModeError, match="point cloud"):
        sample(cloud, "dist", **SMALL)
    with pytest.raises(ModeError, match="unknown mode"):
        sample(circle(), "magic", **SMALL)
    with pytest.raises(LipsdfError):
        SamplingConfig(uniform_fraction=1.5)


def test_world_coordinates_round_trip():
    data = sample(torus(major=10.0, minor=3.5), "signed", **SMALL)
    lower, upper = data.normalization.world_bounds()
    surface = data.world("surface_points")
    assert np.all(surface >= lower) and np.all(surface <= upper)
    np.testing.assert_allclose(np.abs(torus_sdf(surface, 10.0, 3.5)).max(), 0.0, atol=0.05)


@pytest.mark.parametrize("name", ["meshes/stanford-bunny.obj", "meshes/suzanne.obj", "meshes/fandisk.obj",
                                  "polylines2d/idn.obj", "polylines2d/ita.obj",
                                  "pointclouds/bunny_scan_points.xyz"])
def test_real_shapes_give_balanced_signed_datasets(shared_data, name):
    data = sample(load_shape(shared_data / name), "signed", **SMALL)
    assert (data.labels == -1).sum() == (data.labels == 1).sum() == 2000
    assert np.isfinite(data.test_distances).all()
    # Test distances are signed: some points inside, some outside.
    assert (data.test_distances < 0).any() and (data.test_distances > 0).any()
