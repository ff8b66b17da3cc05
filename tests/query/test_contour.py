"""Marching squares / cubes on fields: accuracy on exact SDFs, pruned == dense, world coordinates."""

import numpy as np
import pytest

from fields import CIRCLE_CENTER, CIRCLE_RADIUS, SPHERE_CENTER, SPHERE_RADIUS, analytic_field
from lipsdf.errors import LipsdfError
from lipsdf.field import NeuralField
from lipsdf.geometry.normalize import Normalization
from lipsdf.geometry.shapes import Polyline, TriangleMesh
from lipsdf.nn import build_model
from lipsdf.query.contour import contour, sample_grid
from lipsdf.query.grid import Grid, field_grid
from conftest import box_sdf, torus_sdf

CENTER = np.array([1.0, 2.0, -3.0])
TRUTH = {
    "sphere": lambda x: np.linalg.norm(x - CENTER, axis=1) - 1.0,
    "torus": lambda x: torus_sdf(x - CENTER, 1.0, 0.35),
    "box": lambda x: box_sdf(x - CENTER, np.array([1.0, 0.5, 0.5])),
}


# Not the box at 0.1: its offset surface has edges rounded to radius 0.1, where linear
# interpolation along a cell edge of 0.048 is off by up to h^2 / (8 r) = 3e-3 (measured 2.6e-3).
@pytest.mark.parametrize("name, iso", [("sphere", 0.0), ("torus", 0.0), ("box", 0.0), ("sphere", 0.1),
                                       ("torus", 0.05)])
def test_marching_cubes_vertices_lie_on_the_level_set(name, iso):
    field = analytic_field(name, center=CENTER, scale=1.5)
    result = contour(field, iso, resolution=64)
    mesh = result.contours[0].shape
    assert isinstance(mesh, TriangleMesh) and len(mesh.faces) > 1000
    assert np.abs(TRUTH[name](mesh.vertices) - iso).max() < 1e-3
    # Triangles face where the field grows: outwards.
    centroids = mesh.vertices[mesh.faces].mean(axis=1)
    step = 1e-3 * mesh.face_normals()
    assert (TRUTH[name](centroids + step) > TRUTH[name](centroids - step)).mean() > 0.999


def test_marching_squares_gives_closed_counter_clockwise_loops():
    center = np.array([40.0, -10.0])
    field = analytic_field("circle", center=center, scale=7.0, radius=5.0)
    result = contour(field, [-1.0, 0.0, 1.0], resolution=128)
    for level, item in zip([-1.0, 0.0, 1.0], result.contours):
        loop = item.shape
        assert isinstance(loop, Polyline) and loop.is_closed and loop.n_components == 1
        assert np.abs(np.linalg.norm(loop.vertices - center, axis=1) - 5.0 - level).max() < 1e-3
        a, b = loop.vertices[loop.edges[:, 0]] - center, loop.vertices[loop.edges[:, 1]] - center
        assert (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0] > 0).all()  # counter-clockwise


@pytest.mark.parametrize("name", ["torus", "box"])
def test_pruned_contours_equal_dense_ones_for_far_fewer_evaluations(name):
    field = analytic_field(name, center=CENTER, scale=1.5)
    levels = [-0.1, 0.0, 0.05]
    dense = contour(field, levels, resolution=64, dense=True)
    pruned = contour(field, levels, resolution=64)
    assert pruned.pruned and not dense.pruned and dense.evaluations == 64 ** 3
    assert pruned.evaluations < dense.evaluations / 3
    for a, b in zip(dense.contours, pruned.contours):
        np.testing.assert_allclose(a.shape.vertices, b.shape.vertices, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(a.shape.faces, b.shape.faces)


@pytest.mark.parametrize("name", ["trained_circle", "trained_sphere"])
def test_pruning_on_a_trained_network_matches_the_dense_grid(name, request):
    field = request.getfixturevalue(name)
    grid = field_grid(field, 200 if field.dim == 2 else 48)
    levels = [-0.2 * field.normalization.scale, 0.0]
    dense = sample_grid(field, grid, levels, prune=False)
    pruned = sample_grid(field, grid, levels, batch_size=1000)  # other batches than dense: same values
    assert pruned.pruned and pruned.evaluations < dense.evaluations / 2
    np.testing.assert_allclose(pruned.values[pruned.evaluated], dense.values[pruned.evaluated],
                               atol=1e-6 * field.normalization.scale, rtol=0)
    # Every vertex the network was not asked about stands on the correct side of each level.
    skipped = ~pruned.evaluated
    assert skipped.any()
    for level in levels:
        assert np.array_equal(pruned.values[skipped] > level, dense.values[skipped] > level)


def test_a_pruned_mesh_is_the_dense_one_bit_for_bit_whatever_the_batch_sizes(trained_sphere):
    """The issue's terms: a vertex's value does not depend on the batch it was evaluated in, so the pruned
    mesh at any batch size is the dense mesh at any other, vertex for vertex and face for face."""
    meshes = [contour(trained_sphere, 0.0, resolution=56, dense=dense, batch_size=batch).contours[0].shape
              for dense, batch in ((True, 1 << 18), (True, 1000), (False, 1 << 18), (False, 4096), (False, 777))]
    for mesh in meshes[1:]:
        assert mesh.vertices.tobytes() == meshes[0].vertices.tobytes()
        assert mesh.faces.tobytes() == meshes[0].faces.tobytes()


def test_a_flat_field_falls_back_to_the_dense_grid():
    config = {"arch": "sll", "dim": 3, "layers": 2, "width": 8}
    field = NeuralField(build_model(config), Normalization(np.zeros(3), 1.0), config)
    grid = field_grid(field, 32)
    level = float(np.median(sample_grid(field, grid, 0.0, prune=False).values))
    flat = sample_grid(field, grid, level)  # a random network barely varies: nothing can be pruned
    assert not flat.pruned and flat.evaluated.all() and flat.evaluations < 1.2 * grid.size


def test_non_lipschitz_fields_are_contoured_densely():
    config = {"arch": "mlp", "dim": 2, "layers": 2, "width": 16}
    field = NeuralField(build_model(config), Normalization(np.zeros(2), 1.0), config)
    assert not contour(field, 0.0, resolution=32).pruned
    with pytest.raises(LipsdfError, match="not 1-Lipschitz"):
        sample_grid(field, field_grid(field, 32), 0.0, prune=True)


def test_empty_levels_and_bad_bounds():
    field = analytic_field("sphere", scale=1.5)
    assert contour(field, 5.0, resolution=16).contours[0].shape is None  # the box holds no such level
    with pytest.raises(LipsdfError, match="6 numbers"):
        contour(field, 0.0, bounds=[0, 0, 1, 1])
    with pytest.raises(LipsdfError, match="must exceed"):
        contour(field, 0.0, bounds=[0, 0, 0, 1, -1, 1])


def test_custom_bounds_give_cubic_cells_covering_the_box():
    grid = Grid.covering(np.array([0.0, 0.0, 0.0]), np.array([4.0, 1.0, 2.0]), resolution=41)
    assert grid.spacing == pytest.approx(0.1) and grid.shape == (41, 11, 21)
    np.testing.assert_allclose(grid.upper, [4.0, 1.0, 2.0])


def test_contours_of_trained_fields_are_in_world_coordinates(trained_circle, trained_sphere):
    loop = contour(trained_circle, 0.0, resolution=128).contours[0].shape
    lower, upper = loop.bounds()
    np.testing.assert_allclose(lower, CIRCLE_CENTER - CIRCLE_RADIUS, atol=0.02 * 2 * CIRCLE_RADIUS)
    np.testing.assert_allclose(upper, CIRCLE_CENTER + CIRCLE_RADIUS, atol=0.02 * 2 * CIRCLE_RADIUS)
    mesh = contour(trained_sphere, 0.0, resolution=48).contours[0].shape
    lower, upper = mesh.bounds()
    np.testing.assert_allclose(lower, SPHERE_CENTER - SPHERE_RADIUS, atol=0.03 * 2 * SPHERE_RADIUS)
    np.testing.assert_allclose(upper, SPHERE_CENTER + SPHERE_RADIUS, atol=0.03 * 2 * SPHERE_RADIUS)


@pytest.mark.parametrize("name", ["trained_circle", "trained_sphere"])
def test_a_cropped_grid_is_the_same_block_pruned_or_dense_and_loses_no_crossing(name, request):
    field = request.getfixturevalue(name)
    grid = field_grid(field, 200 if field.dim == 2 else 48)
    levels = [-0.2 * field.normalization.scale, 0.0]
    whole = sample_grid(field, grid, levels, prune=False)
    dense, pruned = (sample_grid(field, grid, levels, prune=prune, crop=True) for prune in (False, True))
    assert dense.grid.shape == pruned.grid.shape and np.array_equal(dense.grid.lower, pruned.grid.lower)
    assert dense.grid.size < grid.size
    np.testing.assert_allclose(pruned.values[pruned.evaluated], dense.values[pruned.evaluated],
                               atol=1e-6 * field.normalization.scale, rtol=0)
    # The block holds every cell with a crossing: the whole grid's crossings all fall inside it.
    start = np.rint((dense.grid.lower - grid.lower) / grid.spacing).astype(int)
    inside = np.zeros(grid.shape, bool)
    inside[tuple(slice(a, a + n) for a, n in zip(start, dense.grid.shape))] = True
    for level in levels:
        above = whole.values > level
        for axis in range(grid.dim):
            low = np.take(above, range(grid.shape[axis] - 1), axis)
            high = np.take(above, range(1, grid.shape[axis]), axis)
            edge_inside = np.take(inside, range(grid.shape[axis] - 1), axis) & np.take(inside, range(1, grid.shape[axis]), axis)
            assert not (low != high)[~edge_inside].any()  # every sign change lies inside the block
