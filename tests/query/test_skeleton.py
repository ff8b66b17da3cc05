"""Medial-axis sampling of a rectangle and a box, against their analytic medial axes."""

import numpy as np
import pytest

from fields import CIRCLE_CENTER, analytic_field
from lipsdf.errors import ModeError
from lipsdf.query.skeleton import skeleton
from conftest import brute_force_segment_distance

CENTER_2D, HALF_2D = np.array([3.0, -1.0]), np.array([1.0, 0.5])
HALF_3D = np.array([1.0, 0.5, 0.5])


def _two_nearest_faces(points: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Distances to the two nearest faces (sides) of a centred box, sorted; equal on the medial axis."""
    faces = np.concatenate([half - points, half + points], axis=1)
    return np.sort(faces, axis=1)[:, :2]


def _rectangle_medial_axis():
    """The analytic medial axis of the rectangle: the middle segment and four diagonals to the corners."""
    w, h = HALF_2D
    ends = np.array([[-(w - h), 0.0], [w - h, 0.0]])
    corners = np.array([[-w, -h], [-w, h], [w, -h], [w, h]])
    vertices = np.concatenate([ends, corners])
    edges = np.array([[0, 1], [0, 2], [0, 3], [1, 4], [1, 5]])
    return vertices, edges


@pytest.mark.parametrize("refine, tolerance", [(False, 1.0), (True, 1e-3)])
def test_rectangle_skeleton_lies_on_and_covers_the_medial_axis(refine, tolerance):
    field = analytic_field("rectangle", center=CENTER_2D, scale=1.5)
    result = skeleton(field, resolution=128, refine=refine)
    h = 3.0 / 127
    local = result.points - CENTER_2D
    vertices, edges = _rectangle_medial_axis()
    distance = brute_force_segment_distance(local, vertices, edges)
    assert distance.max() < tolerance * h
    nearest = _two_nearest_faces(local, HALF_2D)
    np.testing.assert_allclose(result.radii, nearest[:, 0], atol=1e-6)  # radius of the maximal disc
    # Coverage: points along the axis, away from the corners (where the disc shrinks below a cell).
    t = np.linspace(0, 1, 400)[:, None]
    a, b = vertices[edges[:, 0]], vertices[edges[:, 1]]
    along = (a[:, None] + t[None] * (b - a)[:, None]).reshape(-1, 2)
    along = along[_two_nearest_faces(along, HALF_2D)[:, 0] > 2 * h]
    gaps = np.min(np.linalg.norm(along[:, None] - local[None], axis=2), axis=1)
    assert gaps.max() < 2 * h


def test_box_skeleton_lies_on_the_medial_surface():
    field = analytic_field("box", scale=1.5)
    for refine, tolerance in ((False, 1.0), (True, 1e-3)):
        result = skeleton(field, resolution=64, refine=refine)
        h = 3.0 / 63
        nearest = _two_nearest_faces(result.points, HALF_3D)
        # Two faces at the same distance: on the medial surface. Their gap bounds the distance to it.
        assert (nearest[:, 1] - nearest[:, 0]).max() < tolerance * h
        assert len(result.points) > 1000


def test_skeleton_of_a_trained_circle_is_its_centre(trained_circle):
    result = skeleton(trained_circle, resolution=128, threshold=0.5)
    assert len(result.points) > 0
    assert np.linalg.norm(result.points - CIRCLE_CENTER, axis=1).max() < 0.1 * 5.0


def test_skeleton_needs_a_signed_field_and_a_sensible_threshold():
    field = analytic_field("rectangle", scale=1.5)
    field.kind = "unsigned"
    with pytest.raises(ModeError, match="signed"):
        skeleton(field)
    field.kind = "signed"
    with pytest.raises(Exception, match="between 0 and 1"):
        skeleton(field, threshold=1.5)
