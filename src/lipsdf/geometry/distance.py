"""Exact ground truth: unsigned and signed distances, generalized winding numbers.

* 2D polylines: exact distance to the segments; inside/outside (closed
  polylines only) from the 2D winding number.
* 3D polylines: exact unsigned distance to the segments.
* Triangle meshes: exact distance to the triangles; inside/outside from the
  generalized (fast) winding number, so open and non-manifold meshes work,
  of the faces turned to agree and face outward
  (:func:`~lipsdf.geometry.orientation.orient_mesh`).
* Point clouds: distance to the nearest point; inside/outside from
  the point-cloud winding number with oriented normals and per-point areas
  (estimated when the cloud has no normals).

All queries run in batches of ``batch_size`` points, in spatial order
(:func:`~lipsdf.geometry.queries.batched`), so millions of queries need
memory for one batch only. :class:`GroundTruth` builds the acceleration
structures of a shape once and answers any number of queries: libigl's on the
CPU, or, given a torch ``device``, a polyline's or a mesh's
:class:`~lipsdf.geometry.bvh.PrimitiveTree` there (point clouds stay on the CPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

import igl
import numpy as np

from lipsdf.errors import GeometryError, ModeError
from lipsdf.geometry.normals import oriented_normals_and_areas
from lipsdf.geometry.orientation import MeshReport, orient_mesh
from lipsdf.geometry.scan import ScanDistance
from lipsdf.geometry.shapes import PointCloud, Polyline, Shape, TriangleMesh
from lipsdf.geometry.queries import GEOMETRY_BATCH_SIZE, batched
from lipsdf.geometry.winding import mesh_winding_kernel, point_cloud_winding_kernel, polyline_winding_kernel

if TYPE_CHECKING:  # torch is imported only where a device tree is built
    from lipsdf.geometry.bvh import PrimitiveTree

ProgressCallback = Callable[[int], None]
# A point cloud's winding numbers are read from at most this many of its points (a random subset, each point
# standing for its share of the area), which bounds libigl's octree and expansion whatever the cloud's size
# (a 5M-point cloud's time and memory: benchmarks/results/scale.md). Inside and outside farther from the
# surface than the subset's spacing do not change; signs closer than that come from fewer points.
WINDING_POINTS = 50_000


def winding_subset(count: int) -> np.ndarray:
    """The sorted indices of the points of a ``count``-point cloud that its winding numbers are read from:
    all of them up to :data:`WINDING_POINTS`, else that many, drawn at random (the same on every run)."""
    if count <= WINDING_POINTS:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, WINDING_POINTS, replace=False))


def _pad3(points: np.ndarray) -> np.ndarray:
    if points.shape[1] == 3:
        return np.ascontiguousarray(points)
    return np.ascontiguousarray(np.column_stack([points, np.zeros(len(points))]))


class _SimplexDistance:
    """Exact distance to points, segments (2D/3D) or triangles (``cells`` of 1, 2 or 3 vertices), with
    libigl's AABB tree built once.

    Points too: a k-d tree (SciPy's) visits nearly all the points of a closed scan to answer a query deep
    inside it, where they are all about as far; libigl's tree, slower to build, answers such queries many
    times faster (both timed in ``benchmarks/results/scale.md``).
    """

    def __init__(self, vertices: np.ndarray, cells: np.ndarray) -> None:
        self.vertices = _pad3(vertices)
        self.cells = np.ascontiguousarray(cells, dtype=np.int64)
        self.tree = igl.AABB()
        self.tree.init(self.vertices, self.cells)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        sq, _, _ = self.tree.squared_distance(self.vertices, self.cells, _pad3(points))
        return np.sqrt(sq)


class GroundTruth:
    """Distances and winding numbers of one shape, for any number of query points.

    Parameters
    ----------
    shape : Polyline, TriangleMesh or PointCloud.
    batch_size : queries per batch (bounds memory).
    device : a torch device (``"cuda"``) where a polyline's or a mesh's distances and winding numbers are
        computed, in float32; None (the default) computes them with libigl on the CPU, in float64.

    Examples
    --------
    >>> from lipsdf.geometry.primitives import circle
    >>> truth = GroundTruth(circle(radius=1.0, n=1000))
    >>> np.round(truth.signed_distance(np.array([[0.0, 0.0], [2.0, 0.0]])), 3)
    array([-1.,  1.])
    """

    def __init__(self, shape: Shape, batch_size: int = GEOMETRY_BATCH_SIZE, device: Optional[str] = None) -> None:
        self.shape = shape
        self.batch_size = int(batch_size)
        self.device = None if device is None or isinstance(shape, PointCloud) else str(device)
        self._tree: Optional["PrimitiveTree"] = None
        self._distance: Optional[Callable[[np.ndarray], np.ndarray]] = None
        self._winding: Optional[Callable[[np.ndarray], np.ndarray]] = None
        self._oriented: Optional[tuple[np.ndarray, MeshReport]] = None
        self._normals_done: Optional[str] = None
        self._scan: Optional[ScanDistance] = None
        self.largest_winding = 0.0  # over the winding numbers asked for so far: above 1.5, parts overlap

    @property
    def mesh_report(self) -> Optional[MeshReport]:
        """What a mesh is and how its faces were turned for its winding numbers (None for other shapes)."""
        if not isinstance(self.shape, TriangleMesh):
            return None
        if self._oriented is None:
            self._oriented = orient_mesh(self.shape.vertices, self.shape.faces, self.shape.face_areas())
        return self._oriented[1]

    @property
    def has_inside(self) -> bool:
        """Whether inside/outside is defined: not for open curves, 3D polylines and non-orientable meshes."""
        return self.shape.has_inside and (self.mesh_report is None or self.mesh_report.orientable)

    def _check(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != self.shape.dim:
            raise GeometryError(
                f"query points must be an (n, {self.shape.dim}) array for this {self.shape.kind}, got {points.shape}"
            )
        return points

    def _tree_kernel(self, query: str) -> Callable[[np.ndarray], np.ndarray]:
        """A device tree's ``query`` (``unsigned_distance`` or ``winding_number``) on NumPy arrays."""
        if self._tree is None:
            from lipsdf.geometry.bvh import PrimitiveTree

            shape = self.oriented_shape
            self._tree = PrimitiveTree(shape.vertices, shape.edges if isinstance(shape, Polyline) else shape.faces,
                                       self.device)
        method = getattr(self._tree, query)
        return lambda q: method(q).double().cpu().numpy()

    def _distance_kernel(self) -> Callable[[np.ndarray], np.ndarray]:
        if self._distance is None:
            shape = self.shape
            if self.device is not None:
                self._distance = self._tree_kernel("unsigned_distance")
            elif isinstance(shape, Polyline):
                self._distance = _SimplexDistance(shape.vertices, shape.edges)
            elif isinstance(shape, TriangleMesh):
                self._distance = _SimplexDistance(shape.vertices, shape.faces)
            else:
                self._distance = _SimplexDistance(shape.points, np.arange(len(shape.points))[:, None])
        return self._distance

    def _winding_kernel(self) -> Callable[[np.ndarray], np.ndarray]:
        if self._winding is None:
            shape = self.shape
            if not shape.has_inside:
                what = "open polyline" if isinstance(shape, Polyline) and shape.dim == 2 else shape.kind
                raise ModeError(
                    f"inside/outside is not defined for a {what}: use an unsigned mode or close the curve",
                    option="mode"
                )
            if isinstance(shape, Polyline):
                self._winding = (self._tree_kernel("winding_number") if self.device is not None
                                 else polyline_winding_kernel(shape.vertices, shape.edges))
            elif isinstance(shape, TriangleMesh):
                report = self.mesh_report
                if not report.orientable:
                    edges = f"{report.inconsistent_edges:,} edge" + (" joins" if report.inconsistent_edges == 1
                                                                                     else "s join")
                    raise ModeError(f"the mesh's faces cannot be oriented consistently ({edges} faces that cannot "
                                    "agree, as on a Moebius strip), so it has no inside: use the unsigned mode",
                                    option="mode")
                self._winding = (self._tree_kernel("winding_number") if self.device is not None
                                 else mesh_winding_kernel(shape.vertices, self._oriented[0]))
            else:
                cloud = shape
                if len(shape.points) > WINDING_POINTS:
                    pick = winding_subset(len(shape.points))
                    cloud = PointCloud(shape.points[pick], None if shape.normals is None else shape.normals[pick])
                normals, areas, self._normals_done = oriented_normals_and_areas(cloud)
                self._scan = ScanDistance(cloud.points, normals)
                if cloud is not shape:
                    self._normals_done += f"; winding numbers from {WINDING_POINTS:,} of the {len(shape.points):,} points"
                self._winding = point_cloud_winding_kernel(cloud.points, normals, areas)
        return self._winding

    @property
    def oriented_shape(self) -> Shape:
        """The shape with a mesh's faces turned as its winding numbers use them (other shapes as given)."""
        if self.mesh_report is None or not self.mesh_report.turned_faces:
            return self.shape
        return self.shape.with_faces(self._oriented[0])

    def diagnosis(self) -> Optional[dict[str, Any]]:
        """What the shape's inside rests on, for a mesh (:class:`MeshReport`) or a point cloud whose winding
        numbers were asked for (its normals, and what was done to them), with ``lines`` for people."""
        report = self.mesh_report
        if report is not None:
            overlapping, lines = self.largest_winding > 1.5, report.lines()
            if overlapping:
                lines.append(f"overlapping or self-intersecting parts: the winding number reaches "
                             f"{self.largest_winding:.0f} (inside any part counts as inside)")
            return dict(report.to_dict(), overlapping=overlapping, lines=lines)
        if self._normals_done is None:
            return None
        return {"normals": self._normals_done, "lines": [f"point cloud normals: {self._normals_done}"]}

    def unsigned_distance(self, points: np.ndarray, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Exact Euclidean distance from each point to the shape."""
        return batched(self._distance_kernel(), self._check(points), self.batch_size, progress)

    def winding_number(self, points: np.ndarray, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Generalized winding number: about 1 inside, 0 outside (for 2D loops, exactly)."""
        winding = batched(self._winding_kernel(), self._check(points), self.batch_size, progress)
        self.largest_winding = max(self.largest_winding, float(winding.max(initial=0.0)))
        return winding

    def inside(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask of points inside the shape (winding number > 1/2)."""
        return self.winding_number(points) > 0.5

    def signed_distance(self, points: np.ndarray, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Distance, negative inside. Raises ModeError where inside is undefined."""
        points = self._check(points)
        winding = self._winding_kernel()
        distance = self._distance_kernel()

        def kernel(q: np.ndarray) -> np.ndarray:
            d = distance(q)
            return np.where(winding(q) > 0.5, -d, d)

        return batched(kernel, points, self.batch_size, progress)

    def estimated_signed_distance(self, points: np.ndarray, outside: np.ndarray) -> np.ndarray:
        """A point cloud's signed distance as :class:`~lipsdf.geometry.scan.ScanDistance` estimates it from
        the points and their oriented normals (those of its winding numbers); ``outside`` (booleans, the
        winding number's) signs the points beyond the points' band."""
        if not isinstance(self.shape, PointCloud):
            raise GeometryError(f"estimated distances are for point clouds; a {self.shape.kind} has exact ones")
        self._winding_kernel()  # orients the normals the estimate reads
        return self._scan(self._check(points), np.where(outside, 1.0, -1.0))

    def distance(self, points: np.ndarray, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Signed distance where inside/outside is defined, unsigned distance otherwise."""
        if self.has_inside:
            return self.signed_distance(points, progress)
        return self.unsigned_distance(points, progress)


def signed_distance(shape: Shape, points: np.ndarray, batch_size: int = GEOMETRY_BATCH_SIZE) -> np.ndarray:
    """Signed distance of ``points`` to ``shape`` (negative inside). See :class:`GroundTruth`."""
    return GroundTruth(shape, batch_size).signed_distance(points)


def unsigned_distance(shape: Shape, points: np.ndarray, batch_size: int = GEOMETRY_BATCH_SIZE) -> np.ndarray:
    """Unsigned distance of ``points`` to ``shape``. See :class:`GroundTruth`."""
    return GroundTruth(shape, batch_size).unsigned_distance(points)


def winding_number(shape: Shape, points: np.ndarray, batch_size: int = GEOMETRY_BATCH_SIZE) -> np.ndarray:
    """Generalized winding number of ``points`` with respect to ``shape``. See :class:`GroundTruth`."""
    return GroundTruth(shape, batch_size).winding_number(points)
