"""Sphere tracing: rays against a field's zero level, depth / normal / shaded images.

A 1-Lipschitz field never overestimates the distance to its zero level, so a
ray can always advance by ``f(x)``: the ball of that radius around ``x`` holds
no surface, and the march never steps through it. A field that is not
1-Lipschitz (SIREN, a plain MLP) gives no such promise; the tracer counts the
rays that land inside (``f < -epsilon`` after a step), which for those fields
is how often a step went through the surface.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from lipsdf.errors import LipsdfError
from lipsdf.field import DEFAULT_BATCH_SIZE, NeuralField
from lipsdf.query.contour import contour
from lipsdf.query.grid import Device, use_device

DEFAULT_MAX_STEPS = 128
DEFAULT_EPSILON = 1e-4  # hit threshold, in units of the field's scale
# Marching steps between two compactions of the rays still marching: each compaction waits for the device
# (it must count them); in between, stopped rays ride along, frozen, and the answers are those of a
# compaction every step (tests/query/test_trace.py).
COMPACT_EVERY = 4
# Half-size (unit-box units, about 0.5% of a shape's diagonal) of the tetrahedron whose four values give the
# shading normals of pictures: the gradient of a ReLU network is piecewise constant, so its exact normals
# show the linear pieces as facets; their average over this small neighbourhood does not.
SHADING_SMOOTHING = 0.015
_TETRAHEDRON = np.array([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, 1.0]])


@dataclass(frozen=True)
class Camera:
    """A pinhole camera in world units: ``eye`` looks at ``target``, ``up`` is up on the image.

    ``fov``: vertical field of view in degrees; ``width`` x ``height`` pixels.

    Examples
    --------
    >>> camera = Camera(eye=(0, 0, 5), target=(0, 0, 0), width=4, height=2)
    >>> origins, directions = camera.rays()
    >>> origins.shape, directions.shape, bool(np.allclose(np.linalg.norm(directions, axis=1), 1))
    ((8, 3), (8, 3), True)
    """

    eye: Sequence[float]
    target: Sequence[float]
    up: Sequence[float] = (0.0, 1.0, 0.0)
    fov: float = 35.0
    width: int = 512
    height: int = 512

    def __post_init__(self) -> None:
        for name in ("eye", "target", "up"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (3,) or not np.isfinite(value).all():
                raise LipsdfError(f"camera {name} must be 3 finite numbers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)
        if np.linalg.norm(self.target - self.eye) == 0:
            raise LipsdfError("the camera's eye and target are the same point")
        if not 0 < self.fov < 180:
            raise LipsdfError(f"field of view must be between 0 and 180 degrees, got {self.fov}")
        if self.width < 1 or self.height < 1:
            raise LipsdfError(f"image size must be positive, got {self.width} x {self.height}")
        if np.linalg.norm(np.cross(self.target - self.eye, self.up)) < 1e-9 * np.linalg.norm(self.target - self.eye):
            raise LipsdfError("the camera looks along its up direction; pick another up direction or view", option="up")

    def frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit forward, right and up vectors of the image."""
        forward = (self.target - self.eye) / np.linalg.norm(self.target - self.eye)
        right = np.cross(forward, self.up)
        right /= np.linalg.norm(right)
        return forward, right, np.cross(right, forward)

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Origins and unit directions, ``(height * width, 3)``, row by row from the top-left pixel."""
        origins, directions = self.ray_tensors(torch.device("cpu"))
        return origins.numpy(), directions.numpy()

    def ray_tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`rays` as float64 tensors made on ``device`` (a GPU traces an image without host traffic)."""
        forward, right, up = (torch.as_tensor(v, device=device) for v in self.frame())
        half = math.tan(math.radians(self.fov) / 2)
        x = (2 * (torch.arange(self.width, device=device, dtype=torch.float64) + 0.5) / self.width - 1) \
            * half * self.width / self.height
        y = (1 - 2 * (torch.arange(self.height, device=device, dtype=torch.float64) + 0.5) / self.height) * half
        directions = (forward + x[None, :, None] * right + y[:, None, None] * up).reshape(-1, 3)
        directions = directions / torch.linalg.vector_norm(directions, dim=1, keepdim=True)
        return torch.as_tensor(self.eye, device=device).expand_as(directions).clone(), directions


def orbit_camera(target: Sequence[float], radius: float, azimuth: float = 30.0, elevation: float = 20.0,
                 up: Sequence[float] = (0.0, 1.0, 0.0), fov: float = 35.0, width: int = 512,
                 height: int = 512, distance: Optional[float] = None) -> Camera:
    """A camera on a sphere around ``target`` that frames a ball of ``radius``.

    ``azimuth`` turns around ``up`` (0: looking from the front, +z for a y-up
    shape, -y for a z-up one); ``elevation`` raises the eye above the horizon;
    both in degrees. ``distance`` defaults to just far enough to frame the ball.
    """
    up = np.asarray(up, dtype=np.float64)
    if up.shape != (3,) or not np.linalg.norm(up) > 0:
        raise LipsdfError(f"the up direction must be a non-zero 3D vector, got {up.tolist()}")
    if not 0 < fov < 180:
        raise LipsdfError(f"field of view must be between 0 and 180 degrees, got {fov}")
    if distance is not None and not distance > 0:
        raise LipsdfError(f"the camera distance must be positive, got {distance}")
    up = up / np.linalg.norm(up)
    front = np.array([0.0, 0.0, 1.0]) if abs(up[2]) < 0.9 else np.array([0.0, -1.0, 0.0])
    front = front - front.dot(up) * up
    front /= np.linalg.norm(front)
    right = np.cross(up, front)
    a, e = math.radians(azimuth), math.radians(elevation)
    direction = math.cos(e) * (math.cos(a) * front + math.sin(a) * right) + math.sin(e) * up
    half = math.radians(min(fov, fov * width / height)) / 2
    distance = 1.05 * radius / math.sin(half) if distance is None else distance
    target = np.asarray(target, dtype=np.float64)
    return Camera(target + distance * direction, target, up, fov, width, height)


@dataclass
class TraceResult:
    """Per-ray results of sphere tracing, in world units (NaN where a ray missed)."""

    hit: np.ndarray
    depth: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    steps: np.ndarray
    stepped_through: np.ndarray
    unfinished: int
    seconds: float

    @property
    def mean_steps(self) -> float:
        return float(self.steps.mean()) if self.steps.size else 0.0

    @property
    def rays_per_second(self) -> float:
        return self.steps.size / self.seconds if self.seconds > 0 else float("inf")


def _box_interval(origins: torch.Tensor, directions: torch.Tensor, lower: float, upper: float):
    """Entry and exit distances of rays through the box ``[lower, upper]^d`` (entry > exit: missed)."""
    inverse = 1.0 / directions  # +-inf along axis-parallel rays; 0 * inf = NaN is dropped below
    t0, t1 = (lower - origins) * inverse, (upper - origins) * inverse
    near = torch.minimum(t0, t1).nan_to_num(-math.inf).amax(dim=1).clamp(min=0.0)
    far = torch.maximum(t0, t1).nan_to_num(math.inf).amin(dim=1)
    return near, far


def sphere_trace(field: NeuralField, origins: np.ndarray, directions: np.ndarray,
                 max_steps: int = DEFAULT_MAX_STEPS, epsilon: Optional[float] = None, cone: float = 0.0,
                 batch_size: int = DEFAULT_BATCH_SIZE, device: Device = None, smoothing: float = 0.0,
                 level: float = 0.0) -> TraceResult:
    """March rays ``origins + t * directions`` (world units, unit directions) to the field's level ``level``
    (world units; 0 by default; an unsigned field's surface is a small positive level, see
    :func:`~lipsdf.query.contour.default_level`). ``f - level`` is 1-Lipschitz too, so the march is as safe.

    Each step advances by ``f``; a ray hits when ``f < epsilon + cone * t``
    (``epsilon`` in world units, default 1e-4 of the field's scale; ``cone``:
    half a pixel's angle, so that rays grazing the silhouette stop once they
    are within their pixel's footprint), and misses when it leaves the field's
    box. Rays still marching after ``max_steps`` count as misses
    (``unfinished``). Normals are the normalised gradient at the hits, or with
    ``smoothing`` > 0 (unit-box units) the central-difference gradient over a
    tetrahedron of that half-size: the gradient averaged over a small
    neighbourhood, which hides the linear pieces of a ReLU network in shading.

    Examples
    --------
    >>> from lipsdf.nn import build_model
    >>> from lipsdf.geometry.normalize import Normalization
    >>> config = {"arch": "sll", "dim": 3, "layers": 2, "width": 8}
    >>> field = NeuralField(build_model(config), Normalization(np.zeros(3), 1.0), config)
    >>> result = sphere_trace(field, np.array([[0.0, 0.0, 5.0]]), np.array([[0.0, 0.0, -1.0]]))
    >>> result.hit.shape, bool(result.stepped_through.any())
    ((1,), False)
    """
    started = time.perf_counter()
    field = use_device(field, device)
    origins = torch.as_tensor(np.asarray(origins, dtype=np.float64), device=field.device)
    directions = torch.as_tensor(np.asarray(directions, dtype=np.float64), device=field.device)
    return _trace(field, origins, directions, max_steps, epsilon, cone, batch_size, smoothing, level, started)


def _trace(field: NeuralField, origins: torch.Tensor, directions: torch.Tensor, max_steps: int,
           epsilon: Optional[float], cone: float, batch_size: int, smoothing: float, level: float,
           started: float) -> TraceResult:
    """:func:`sphere_trace` on float64 world-unit ray tensors on the field's device: every ray marches on
    the device, and the results cross to the host once, at the end."""
    if not smoothing >= 0:
        raise LipsdfError(f"the shading smoothing must be >= 0, got {smoothing}", option="smoothing")
    if field.dim != 3:
        raise LipsdfError(f"sphere tracing needs a 3D field, this one is {field.dim}D; "
                          "`lipsdf render` draws 2D fields as maps")
    norm = field.normalization
    epsilon = (DEFAULT_EPSILON * norm.scale if epsilon is None else epsilon) / norm.scale
    level_unit = float(level) / norm.scale
    center = torch.as_tensor(norm.center, device=field.device)
    origins_unit = ((origins - center) / norm.scale).float()
    directions_t = directions.float()
    n = len(origins_unit)
    t, far = _box_interval(origins_unit, directions_t, -1.0, 1.0)
    steps = torch.zeros(n, dtype=torch.int32, device=field.device)
    hit = torch.zeros(n, dtype=torch.bool, device=field.device)
    through = torch.zeros(n, dtype=torch.bool, device=field.device)
    active = torch.nonzero(t <= far).flatten()
    live = torch.ones(len(active), dtype=torch.bool, device=field.device)  # of ``active``, still marching
    for step in range(max_steps):
        # the host learns which rays still march (and how many) only every COMPACT_EVERY steps; in between,
        # rays that stopped are carried along, frozen
        if step % COMPACT_EVERY == 0:
            active, live = active[live], live[live]
            if len(active) == 0:
                break
        t_active = t[active]
        values = _marching_values(field, origins_unit[active] + t_active[:, None] * directions_t[active],
                                  batch_size) - level_unit
        steps[active] += live.int()
        arrived = live & (values < epsilon + cone * t_active)
        hit[active] |= arrived
        if step > 0:  # a ray that starts inside the shape has not stepped through anything
            through[active] = torch.where(live, values < -epsilon, through[active])
        t_active = torch.where(live & ~arrived, t_active + values, t_active)
        t[active] = t_active
        live &= ~arrived & (t_active <= far[active])
    unfinished = int(live.sum())

    hits = torch.nonzero(hit).flatten()
    points_unit = origins_unit[hits] + t[hits, None] * directions_t[hits]
    if smoothing > 0:
        corners = torch.as_tensor(_TETRAHEDRON, dtype=points_unit.dtype, device=points_unit.device)
        values = field.unit_values((points_unit[:, None, :] + smoothing * corners).reshape(-1, 3), batch_size)
        gradients = (values.reshape(-1, 4, 1) * corners).sum(dim=1)
    else:
        _, gradients = field.unit_values_and_gradients(points_unit, batch_size)
    gradients = gradients.double()
    length = torch.linalg.vector_norm(gradients, dim=1, keepdim=True)
    depth = torch.full((n,), float("nan"), dtype=torch.float64, device=field.device)
    points = torch.full((n, 3), float("nan"), dtype=torch.float64, device=field.device)
    normals = torch.full((n, 3), float("nan"), dtype=torch.float64, device=field.device)
    depth[hits] = t[hits].double() * norm.scale
    points[hits] = points_unit.double() * norm.scale + center
    normals[hits] = torch.where(length > 0, gradients / length.clamp_min(1e-300), 0.0)
    return TraceResult(hit.cpu().numpy(), depth.cpu().numpy(), points.cpu().numpy(), normals.cpu().numpy(),
                       steps.cpu().numpy().astype(np.int64), through.cpu().numpy(), unfinished,
                       time.perf_counter() - started)


def _marching_values(field: NeuralField, points: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The network at the marching rays' points. On a GPU the set shrinks at every step, and each new
    batch size costs the matrix library a new kernel choice: the batch is padded to a power of two, so
    a march meets a few sizes, not one per step."""
    count = len(points)
    if field.device.type != "cuda" or count >= field.batch_size(batch_size):
        return field.unit_values(points, batch_size)
    padded = max(1024, 1 << (count - 1).bit_length())
    points = torch.cat([points, points.new_zeros(padded - count, points.shape[1])])
    return field.unit_values(points, batch_size)[:count]


def shape_framing(field: NeuralField, batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[np.ndarray, float]:
    """Centre and radius of a ball around the field's zero level (from a coarse pruned contour), world units.

    Falls back to the field's box when the zero level is empty.
    """
    shape = contour(field, 0.0 if field.kind == "signed" else 0.01 * field.normalization.scale,
                    resolution=48, batch_size=batch_size).contours[0].shape
    if shape is None:
        lower, upper = field.normalization.world_bounds()
    else:
        lower, upper = shape.bounds()
    return 0.5 * (lower + upper), 0.5 * float(np.linalg.norm(upper - lower))


def trace_image(field: NeuralField, camera: Camera, max_steps: int = DEFAULT_MAX_STEPS,
                epsilon: Optional[float] = None, batch_size: int = DEFAULT_BATCH_SIZE,
                device: Device = None, smoothing: float = 0.0, level: float = 0.0) -> TraceResult:
    """Sphere-trace one ray per pixel of ``camera``; arrays come back with shape ``(height, width, ...)``."""
    started = time.perf_counter()
    field = use_device(field, device)
    origins, directions = camera.ray_tensors(field.device)
    half_pixel = math.tan(math.radians(camera.fov) / 2) / camera.height  # radians, near the axis
    result = _trace(field, origins, directions, max_steps, epsilon, half_pixel, batch_size, smoothing, level,
                    started)
    shape = (camera.height, camera.width)
    for name in ("hit", "depth", "steps", "stepped_through"):
        setattr(result, name, getattr(result, name).reshape(shape))
    result.points = result.points.reshape(shape + (3,))
    result.normals = result.normals.reshape(shape + (3,))
    return result
