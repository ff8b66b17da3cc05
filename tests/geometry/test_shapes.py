"""A mesh's derived arrays (areas, normals, edge counts) against independent computations."""

import numpy as np

from lipsdf.geometry.orientation import edge_counts
from lipsdf.geometry.primitives import torus
from lipsdf.geometry.shapes import TriangleMesh


def _reference_normals(vertices, faces):
    corners = vertices[faces]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return 0.5 * np.linalg.norm(cross, axis=1), cross / np.linalg.norm(cross, axis=1, keepdims=True)


def test_a_moved_or_turned_mesh_has_the_areas_and_normals_of_a_new_one():
    mesh = torus()
    moved = mesh.transformed(lambda v: 0.25 * v + np.array([1.0, -2.0, 0.5]))
    areas, normals = _reference_normals(moved.vertices, moved.faces)
    np.testing.assert_allclose(moved.face_areas(), areas, rtol=1e-12)
    np.testing.assert_allclose(moved.face_normals(), normals, atol=1e-12)
    turned = moved.with_faces(moved.faces[:, ::-1])
    np.testing.assert_allclose(turned.face_areas(), areas, rtol=1e-12)
    np.testing.assert_allclose(turned.face_normals(), -normals, atol=1e-12)


def test_a_sliver_moved_to_no_area_has_a_zero_normal_not_nan():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.5, 1e-12, 0]], dtype=float)
    mesh = TriangleMesh(vertices, np.array([[0, 1, 2], [0, 3, 1]]))  # the sliver's area is 5e-13 > 0
    moved = mesh.transformed(lambda v: v + np.array([0.0, 1e5, 0.0]))  # 1e5 + 1e-12 rounds to 1e5: area 0
    assert moved.face_areas()[1] == 0.0
    assert np.isfinite(moved.face_normals()).all()
    np.testing.assert_array_equal(moved.face_normals()[1], 0.0)
    np.testing.assert_allclose(moved.face_normals()[0], [0, 0, 1])


def test_edge_counts_match_numpys_unique():
    faces = np.random.default_rng(0).integers(0, 40, size=(300, 3))
    counts, inverse = edge_counts(faces)
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    keys = np.sort(directed, axis=1)
    unique, expected_inverse, expected_counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(counts, expected_counts)
    np.testing.assert_array_equal(inverse, expected_inverse.ravel())
