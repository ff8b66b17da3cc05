from pathlib import Path

import numpy as np
import pytest

from lipsdf.field import NeuralField

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real shapes in ../shared/data; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def brute_force_segment_distance(points: np.ndarray, vertices: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest segment, by checking every segment (independent truth)."""
    a = vertices[edges[:, 0]][None]
    b = vertices[edges[:, 1]][None]
    p = points[:, None]
    ab = b - a
    t = np.clip(np.sum((p - a) * ab, axis=-1) / np.sum(ab * ab, axis=-1), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1).min(axis=1)


def box_sdf(points: np.ndarray, half_sizes: np.ndarray) -> np.ndarray:
    """Analytic signed distance to an axis-aligned box centred at the origin (2D or 3D)."""
    q = np.abs(points) - half_sizes
    return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)


def torus_sdf(points: np.ndarray, major: float, minor: float) -> np.ndarray:
    ring = np.linalg.norm(points[:, :2], axis=1) - major
    return np.hypot(ring, points[:, 2]) - minor


@pytest.fixture(scope="session")
def trained_circle() -> NeuralField:
    """A small SLL field trained once per session on a circle of radius 5 at (40, -10)."""
    from query.fields import trained_circle_field

    return trained_circle_field()


@pytest.fixture(scope="session")
def trained_sphere() -> NeuralField:
    """A small SLL field trained once per session on a sphere of radius 2 at (3, -1, 2)."""
    from query.fields import trained_sphere_field

    return trained_sphere_field()
