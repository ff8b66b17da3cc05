import numpy as np
import pytest

from conftest import box_sdf, brute_force_segment_distance, torus_sdf
from lipsdf.errors import GeometryError, ModeError
from lipsdf.geometry.distance import GroundTruth, signed_distance, unsigned_distance, winding_number
from lipsdf.geometry.primitives import box, circle, flower, helix, rectangle, segment, sphere, torus
from lipsdf.geometry.shapes import PointCloud, Polyline, TriangleMesh

RTOL = 1e-6


def _random(n, dim, scale=2.0, seed=0):
    return np.random.default_rng(seed).uniform(-scale, scale, size=(n, dim))


def test_square_polyline_signed_distance_is_analytic():
    points = _random(20000, 2)
    expected = box_sdf(points, np.array([1.0, 0.5]))
    got = signed_distance(rectangle(2.0, 1.0), points)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-12)


def test_circle_polyline_matches_brute_force_and_analytic_sign():
    shape = circle(radius=1.0, n=512)
    points = _random(5000, 2, seed=1)
    got = signed_distance(shape, points)
    np.testing.assert_allclose(np.abs(got), brute_force_segment_distance(points, shape.vertices, shape.edges),
                               rtol=RTOL, atol=1e-12)
    # The 512-gon lies between radius cos(pi/512) and 1: compare with the analytic circle beyond that gap.
    radius = np.linalg.norm(points, axis=1)
    clear = np.abs(radius - 1.0) > 1e-4
    assert np.all(np.sign(got[clear]) == np.sign(radius[clear] - 1.0))
    assert np.all(np.abs(got - (radius - 1.0)) <= 1.0 - np.cos(np.pi / 512) + 1e-12)


def test_segment_3d_distance_is_analytic():
    points = _random(20000, 3, seed=2)
    a, b = np.array([-0.5, 0.2, 0.1]), np.array([0.7, -0.3, 0.4])
    t = np.clip((points - a) @ (b - a) / np.dot(b - a, b - a), 0, 1)
    expected = np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1)
    np.testing.assert_allclose(unsigned_distance(segment(tuple(a), tuple(b)), points), expected, rtol=RTOL, atol=1e-12)


def test_helix_distance_matches_brute_force():
    shape = helix(n=200)
    points = _random(3000, 3, seed=3)
    expected = brute_force_segment_distance(points, shape.vertices, shape.edges)
    np.testing.assert_allclose(unsigned_distance(shape, points), expected, rtol=RTOL, atol=1e-12)


def test_box_mesh_signed_distance_is_analytic():
    points = _random(20000, 3, seed=4)
    expected = box_sdf(points, np.array([1.0, 0.5, 0.5]))
    clear = np.abs(expected) > 1e-3  # the fast winding number may blur the sign right at the surface
    got = signed_distance(box((2.0, 1.0, 1.0)), points)
    np.testing.assert_allclose(np.abs(got), np.abs(expected), rtol=RTOL, atol=1e-12)
    assert np.all(np.sign(got[clear]) == np.sign(expected[clear]))


def test_sphere_mesh_distance_within_discretisation_of_analytic():
    mesh = sphere(radius=1.0, n_theta=64, n_phi=128)
    points = _random(20000, 3, seed=5)
    radius = np.linalg.norm(points, axis=1)
    # Every triangle lies between the inscribed radius and 1.
    corners = mesh.vertices[mesh.faces]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    inscribed = np.min(np.abs(np.sum(normal * corners[:, 0], axis=1)) / np.linalg.norm(normal, axis=1))
    got = signed_distance(mesh, points)
    assert np.all(got >= radius - 1.0 - 1e-9)
    assert np.all(got <= radius - inscribed + 1e-9)


def test_torus_mesh_close_to_analytic_sdf():
    mesh = torus(1.0, 0.35, n_u=192, n_v=96)
    points = _random(20000, 3, scale=1.6, seed=6)
    expected = torus_sdf(points, 1.0, 0.35)
    tolerance = np.abs(torus_sdf(mesh.vertices[mesh.faces].mean(axis=1), 1.0, 0.35)).max()
    got = signed_distance(mesh, points)
    assert tolerance < 1e-3
    assert np.abs(got - expected).max() <= 2 * tolerance


@pytest.mark.parametrize("mesh, sdf", [
    (sphere(1.0, n_theta=128, n_phi=256), lambda p: np.linalg.norm(p, axis=1) - 1.0),
    (torus(1.0, 0.35, n_u=256, n_v=128), lambda p: torus_sdf(p, 1.0, 0.35)),
])
def test_winding_number_labels_agree_with_analytic_inside(mesh, sdf):
    points = _random(200000, 3, scale=1.5, seed=7)
    expected_inside = sdf(points) < 0
    far = np.abs(sdf(points)) > 1e-3
    inside = GroundTruth(mesh).inside(points)
    assert np.mean(inside[far] == expected_inside[far]) >= 0.999


def test_nested_loops_get_holes_right_whatever_the_file_orientation():
    shape = flower()
    points = _random(5000, 2, scale=1.5, seed=8)
    reference = winding_number(shape, points)
    # Same loops with every edge reversed, and with only the hole reversed: orientation is repaired on load.
    reversed_all = Polyline(shape.vertices, shape.edges[:, ::-1])
    n_outer = 400
    hole_flipped = Polyline(shape.vertices, np.vstack([shape.edges[:n_outer], shape.edges[n_outer:, ::-1]]))
    for variant in (reversed_all, hole_flipped):
        np.testing.assert_allclose(winding_number(variant, points), reference, atol=1e-9)
    assert GroundTruth(shape).inside(np.array([[0.0, 0.0]]))[0] == False  # noqa: E712 (the hole)
    assert GroundTruth(shape).inside(np.array([[0.6, 0.0]]))[0] == True  # noqa: E712


def test_island_inside_a_hole_is_inside():
    rings = [circle(3.0, 64), circle(2.0, 64), circle(1.0, 64)]
    vertices = np.vstack([r.vertices for r in rings])
    edges = np.vstack([r.edges + 64 * i for i, r in enumerate(rings)])
    truth = GroundTruth(Polyline(vertices, edges))
    inside = truth.inside(np.array([[0.0, 0.0], [1.5, 0.0], [2.5, 0.0], [3.5, 0.0]]))
    assert inside.tolist() == [True, False, True, False]


def test_open_polylines_have_no_inside():
    open_curve = Polyline(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]), np.array([[0, 1], [1, 2]]))
    with pytest.raises(ModeError, match="unsigned"):
        signed_distance(open_curve, np.zeros((1, 2)))
    with pytest.raises(ModeError):
        signed_distance(helix(), np.zeros((1, 3)))


def test_point_cloud_distance_and_inside():
    rng = np.random.default_rng(9)
    directions = rng.normal(size=(4000, 3))
    points = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    queries = _random(2000, 3, seed=10)
    truth = GroundTruth(PointCloud(points))  # normals estimated and oriented
    expected = np.linalg.norm(queries[:, None] - points[None], axis=2).min(axis=1)
    np.testing.assert_allclose(truth.unsigned_distance(queries), expected, rtol=RTOL, atol=1e-12)
    radius = np.linalg.norm(queries, axis=1)
    clear = np.abs(radius - 1.0) > 0.1
    assert np.mean(truth.inside(queries)[clear] == (radius[clear] < 1.0)) > 0.999


def test_batches_give_the_same_answer():
    points = _random(10000, 3, seed=11)
    mesh = torus()
    np.testing.assert_array_equal(GroundTruth(mesh, batch_size=777).signed_distance(points),
                                  GroundTruth(mesh).signed_distance(points))


def test_queries_of_the_wrong_dimension_are_refused():
    with pytest.raises(GeometryError, match=r"\(n, 3\)"):
        unsigned_distance(torus(), np.zeros((4, 2)))


def test_a_mesh_keeps_its_areas_and_normals_read_only_and_drops_degenerate_faces():
    # a unit right triangle (area 1/2, normal +z), the same triangle flipped (-z), and a zero-area sliver
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0]])
    mesh = TriangleMesh(vertices, np.array([[0, 1, 2], [0, 2, 1], [0, 1, 3]]))
    np.testing.assert_allclose(mesh.face_areas(), [0.5, 0.5])
    np.testing.assert_allclose(mesh.face_normals(), [[0, 0, 1], [0, 0, -1]])
    assert mesh.face_areas() is mesh.face_areas() and mesh.face_normals() is mesh.face_normals()
    with pytest.raises(ValueError):
        mesh.face_normals()[0, 0] = 5.0
    assert len(mesh.vertices) == 3  # the sliver's own vertex went with it
