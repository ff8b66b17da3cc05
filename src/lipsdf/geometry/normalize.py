"""World <-> unit-box coordinates.

Every dataset and field carries the :class:`Normalization` that mapped its
shape into the unit box ``[-1, 1]^d``. It is a uniform scale plus a shift, so
distances scale by one number and a 1-Lipschitz function in unit coordinates
is 1-Lipschitz in world coordinates too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipsdf.errors import GeometryError


@dataclass(frozen=True)
class Normalization:
    """``unit = (world - center) / scale``.

    Parameters
    ----------
    center : (d,) array, the world point that maps to the origin.
    scale : world length of one unit.

    Examples
    --------
    >>> norm = Normalization.fit(np.array([0.0, 0.0]), np.array([4.0, 2.0]), padding=0.0)
    >>> norm.to_unit(np.array([[4.0, 1.0]]))
    array([[1., 0.]])
    >>> float(norm.distance_to_world(0.5))
    1.0
    """

    center: np.ndarray
    scale: float

    def __post_init__(self) -> None:
        center = np.asarray(self.center, dtype=np.float64).reshape(-1)
        if not np.isfinite(center).all() or not (np.isfinite(self.scale) and self.scale > 0):
            raise GeometryError(f"invalid normalization: center {center}, scale {self.scale}")
        if len(center) not in (2, 3):
            raise GeometryError(f"a normalization is 2D or 3D, got a centre of {len(center)} coordinates")
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "scale", float(self.scale))

    @classmethod
    def fit(cls, lower: np.ndarray, upper: np.ndarray, padding: float = 0.2) -> "Normalization":
        """Centre the box ``[lower, upper]`` and scale its largest half-side to ``1 / (1 + padding)``.

        The shape then lies inside ``[-1, 1]^d`` with room around it for the
        field's outside.
        """
        lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
        half = 0.5 * float(np.max(upper - lower))
        if not half > 0:
            raise GeometryError("the shape has zero extent: cannot normalise it")
        if padding < 0:
            raise GeometryError(f"padding must be >= 0, got {padding}")
        return cls(0.5 * (lower + upper), half * (1.0 + padding))

    @classmethod
    def identity(cls, dim: int) -> "Normalization":
        return cls(np.zeros(dim), 1.0)

    @property
    def dim(self) -> int:
        return len(self.center)

    def to_unit(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - self.center) / self.scale

    def to_world(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) * self.scale + self.center

    def distance_to_world(self, distance):
        return np.asarray(distance, dtype=np.float64) * self.scale

    def world_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The unit box ``[-1, 1]^d`` in world coordinates."""
        return self.center - self.scale, self.center + self.scale

    def to_dict(self) -> dict:
        return {"center": self.center.tolist(), "scale": self.scale}

    @classmethod
    def from_dict(cls, data: dict) -> "Normalization":
        return cls(np.asarray(data["center"], dtype=np.float64), float(data["scale"]))
