"""Reading and writing shapes and point sets (the formats are :mod:`lipsdf.geometry.readers`').

The kind of shape is detected from the content: faces make a mesh (a flat one,
with constant z, becomes its 2D boundary polyline), lines make a polyline (2D
when z is constant), bare vertices make a point cloud. ``kind=`` overrides.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from lipsdf.errors import GeometryError, InputFileError
from lipsdf.files import PathLike, atomic_output, load_npz, sha256_of_file
from lipsdf.geometry.primitives import BUILTIN_PREFIX, builtin_shape
from lipsdf.geometry.readers import READERS, RawGeometry
from lipsdf.geometry.shapes import KINDS, PointCloud, Polyline, Shape, TriangleMesh, as_index_array

MESH_FORMATS = (".obj", ".ply", ".off", ".stl", ".mesh")
POINT_FORMATS = (".ply", ".xyz", ".txt", ".npz")
READ_FORMATS = (".obj", ".ply", ".off", ".stl", ".mesh", ".xyz", ".txt", ".npz", ".geojson", ".json")


def _is_planar(vertices: np.ndarray) -> bool:
    return vertices.shape[1] == 2 or np.ptp(vertices[:, 2]) == 0


def _boundary_edges(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Directed edges that belong to exactly one triangle of non-zero area."""
    corners = vertices[faces][:, :, :2]
    ab, ac = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    faces = faces[ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0] != 0]
    if len(faces) == 0:
        raise GeometryError("the flat mesh has no triangle of non-zero area")
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, inverse, counts = np.unique(np.sort(directed, axis=1), axis=0, return_inverse=True, return_counts=True)
    return directed[counts[inverse.ravel()] == 1]


def _to_shape(raw: RawGeometry, kind: Optional[str], source: str) -> Shape:
    if kind is not None and kind not in KINDS:
        raise InputFileError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
    vertices = raw.vertices
    raw.faces = as_index_array(raw.faces, "faces", 3, len(vertices))
    raw.edges = as_index_array(raw.edges, "edges", 2, len(vertices))
    has_faces, has_edges = len(raw.faces) > 0, len(raw.edges) > 0
    if kind is None:
        if has_faces:
            kind = "polyline2d" if _is_planar(vertices) else "mesh"
        elif has_edges:
            kind = "polyline2d" if _is_planar(vertices) else "polyline3d"
        else:
            kind = "pointcloud"
    if kind == "pointcloud":
        if vertices.shape[1] != 3:
            raise GeometryError(f"{source}: point clouds must be 3D; this file has 2D coordinates")
        return PointCloud(vertices, raw.normals)
    if kind == "mesh":
        if not has_faces:
            raise GeometryError(f"{source} has no faces: it cannot be read as a mesh (read it as a point cloud)",
                                option="kind")
        if vertices.shape[1] != 3:
            raise GeometryError(f"{source}: meshes must be 3D; a 2D triangulation is read as a 2D polyline",
                                option="kind")
        return TriangleMesh(vertices, raw.faces)
    # Polylines: from lines, or from the boundary of the faces.
    edges = raw.edges if has_edges else (_boundary_edges(vertices, raw.faces) if has_faces else raw.edges)
    if len(edges) == 0:
        what = "faces with a boundary" if has_faces else "lines ('l' entries or edges)"
        raise GeometryError(f"{source} has no {what}: it cannot be read as a polyline")
    if kind == "polyline2d":
        if not _is_planar(vertices):
            raise GeometryError(
                f"{source}: a 2D polyline needs a constant z coordinate, but z spans "
                f"[{vertices[:, 2].min():g}, {vertices[:, 2].max():g}]; read it as a 3D polyline", option="kind"
            )
        return Polyline(vertices[:, :2], edges)
    if vertices.shape[1] == 2:
        vertices = np.column_stack([vertices, np.zeros(len(vertices))])
    return Polyline(vertices, edges)


def shape_name(path: PathLike) -> str:
    """The name outputs are called after: the file's stem, or NAME for ``builtin:NAME``.

    Examples
    --------
    >>> shape_name("meshes/bunny.obj"), shape_name("builtin:torus")
    ('bunny', 'torus')
    """
    text = str(path)
    return text[len(BUILTIN_PREFIX):] if text.startswith(BUILTIN_PREFIX) else Path(text).stem


def source_info(path: PathLike) -> dict[str, str]:
    """Provenance of a shape for a dataset's metadata: its absolute path and SHA-256, or ``builtin:NAME``."""
    text = str(path)
    if text.startswith(BUILTIN_PREFIX):
        return {"path": text}
    return {"path": str(Path(text).resolve()), "sha256": sha256_of_file(text)}


def load_shape(path: PathLike, kind: Optional[str] = None) -> Shape:
    """Read a shape file, detecting its kind from the content unless ``kind`` is given.

    ``path`` may also be ``builtin:NAME`` for a procedural shape
    (see :data:`lipsdf.geometry.primitives.BUILTIN_SHAPES`).

    Parameters
    ----------
    path : file path, or ``builtin:NAME``.
    kind : one of ``polyline2d``, ``polyline3d``, ``mesh``, ``pointcloud``; None to detect.

    Examples
    --------
    >>> load_shape("builtin:torus").kind
    'mesh'
    """
    text = str(path)
    if text.startswith(BUILTIN_PREFIX):
        shape = builtin_shape(text[len(BUILTIN_PREFIX):])
        if kind is not None and kind != shape.kind:
            raise InputFileError(f"{text} is a {shape.kind}, not a {kind}")
        return shape
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"no such file: {path}")
    if path.is_dir():
        raise InputFileError(f"{path} is a directory; give a shape file")
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise InputFileError(
            f"unknown shape format {suffix or '(no extension)'!r} for {path.name}; "
            f"supported: {', '.join(READ_FORMATS)}"
        )
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # a damaged file's numbers overflow: the checks below say so, once
            raw = READERS[suffix](path)
    except UnicodeDecodeError:
        raise InputFileError(f"{path} is not a text {suffix} file") from None
    return _to_shape(raw, kind, str(path))


def load_points(path: PathLike) -> np.ndarray:
    """The coordinates in a points file as lipsdf writes them (:func:`save_points`: .xyz/.txt, .npz, .ply).

    Text files give all their columns (coordinates first, then normals and scalars, as named in the
    header); .npz files their ``points`` array; .ply files their vertices.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "centres.xyz"
    >>> save_points(np.ones((3, 2)), out, scalars={"radius": np.zeros(3)})
    >>> load_points(out)[:, :2].tolist()
    [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"no such points file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".xyz", ".txt"):
            points = np.loadtxt(path, ndmin=2)
        elif suffix == ".npz":
            points = np.asarray(load_npz(path)["points"], dtype=np.float64)
        elif suffix == ".ply":
            points = load_shape(path, kind="pointcloud").points
        else:
            raise InputFileError(f"unknown points format {suffix or '(no extension)'!r} for {path.name}; "
                                 "supported: .xyz .txt .npz .ply")
    except (ValueError, KeyError, OSError) as exc:
        raise InputFileError(f"cannot read points from {path}: {exc}") from None
    if points.ndim != 2 or points.shape[1] < 2:
        raise InputFileError(f"{path} holds no 2D or 3D points")
    return points


# --------------------------------------------------------------------------- writers


def _obj_text(vertices: np.ndarray, faces: Optional[np.ndarray] = None, edges: Optional[np.ndarray] = None) -> str:
    v = vertices if vertices.shape[1] == 3 else np.column_stack([vertices, np.zeros(len(vertices))])
    parts = ["v " + " ".join(f"{x:.17g}" for x in row) for row in v]
    if faces is not None:
        parts += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    if edges is not None:
        parts += [f"l {a + 1} {b + 1}" for a, b in edges]
    return "\n".join(parts) + "\n"


def _medit_text(vertices: np.ndarray, faces: Optional[np.ndarray], edges: Optional[np.ndarray]) -> str:
    dim = vertices.shape[1]
    lines = ["MeshVersionFormatted 2", f"Dimension {dim}", "Vertices", str(len(vertices))]
    lines += [" ".join(f"{x:.17g}" for x in row) + " 0" for row in vertices]
    if edges is not None and len(edges):
        lines += ["Edges", str(len(edges))] + [f"{a + 1} {b + 1} 0" for a, b in edges]
    if faces is not None and len(faces):
        lines += ["Triangles", str(len(faces))] + [f"{a + 1} {b + 1} {c + 1} 0" for a, b, c in faces]
    return "\n".join(lines + ["End"]) + "\n"


def save_shape(shape: Shape, path: PathLike) -> None:
    """Write ``shape`` atomically; the format follows the extension.

    Meshes: .obj .ply .off .stl .mesh; polylines: .obj (``l`` lines) .mesh;
    point clouds: .ply .xyz .txt .npz (normals included when present).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from lipsdf.geometry.primitives import box
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "box.off"
    >>> save_shape(box(), out); load_shape(out).faces.shape
    (12, 3)
    """
    if isinstance(shape, PointCloud):
        save_points(shape.points, path, shape.normals)
        return
    path = Path(path)
    suffix = path.suffix.lower()
    with atomic_output(path) as tmp:
        if isinstance(shape, TriangleMesh):
            if suffix == ".obj":
                tmp.write_text(_obj_text(shape.vertices, faces=shape.faces))
            elif suffix == ".mesh":
                tmp.write_text(_medit_text(shape.vertices, shape.faces, None))
            elif suffix in (".ply", ".off", ".stl"):
                import trimesh

                trimesh.Trimesh(shape.vertices, shape.faces, process=False).export(str(tmp), file_type=suffix[1:])
            else:
                raise InputFileError(f"cannot write a mesh as {suffix!r}; use one of {', '.join(MESH_FORMATS)}")
        elif isinstance(shape, Polyline):
            if suffix == ".obj":
                tmp.write_text(_obj_text(shape.vertices, edges=shape.edges))
            elif suffix == ".mesh":
                tmp.write_text(_medit_text(shape.vertices, None, shape.edges))
            else:
                raise InputFileError(f"cannot write a polyline as {suffix!r}; use .obj or .mesh")


def save_points(points: np.ndarray, path: PathLike, normals: Optional[np.ndarray] = None,
                scalars: Optional[dict[str, np.ndarray]] = None) -> None:
    """Write a point set (2D or 3D, optionally with normals and named per-point scalars), atomically.

    Formats: .ply (2D points get z = 0), .xyz/.txt (one column per value,
    named in a ``#`` header line), .npz (arrays ``points``, ``normals`` and
    one per scalar).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "centres.xyz"
    >>> save_points(np.zeros((2, 2)), out, scalars={"radius": np.ones(2)})
    >>> out.read_text().splitlines()[0]
    '# x y radius'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    points = np.asarray(points, dtype=np.float64)
    scalars = {name: np.asarray(values, dtype=np.float64).reshape(-1) for name, values in (scalars or {}).items()}
    if suffix == ".ply" and points.shape[1] == 2:  # PLY readers expect x, y and z
        points = np.column_stack([points, np.zeros(len(points))])
        normals = None if normals is None else np.column_stack([normals, np.zeros(len(normals))])
    axes = "xyz"[: points.shape[1]]
    names = list(axes) + ([f"n{a}" for a in axes] if normals is not None else []) + list(scalars)
    columns = np.column_stack([points] + ([normals] if normals is not None else []) + list(scalars.values()))
    with atomic_output(path) as tmp:
        if suffix in (".xyz", ".txt"):
            np.savetxt(tmp, columns, fmt="%.17g", header=" ".join(names))
        elif suffix == ".npz":
            arrays = {"points": points, **({"normals": normals} if normals is not None else {}), **scalars}
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        elif suffix == ".ply":
            header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(points)}"]
            header += [f"property double {n}" for n in names] + ["end_header"]
            with open(tmp, "wb") as handle:
                handle.write(("\n".join(header) + "\n").encode())
                handle.write(np.ascontiguousarray(columns, dtype="<f8").tobytes())
        else:
            raise InputFileError(f"cannot write points as {suffix!r}; use .ply, .xyz, .txt or .npz")
