"""Reading and writing shapes.

Readers: OBJ (``v``, ``f``, ``l``), MEDIT ``.mesh`` (vertices, edges,
triangles), PLY / OFF / STL (through trimesh; vertex-only PLY gives a point
cloud, with normals when it has ``nx ny nz``), ``.xyz`` / ``.txt`` point sets
(3 or 6 columns, ``#`` comments), ``.npz`` point sets (``points``, optional
``normals``) and GeoJSON outlines (Polygon / MultiPolygon / LineString).

The kind of shape is detected from the content: faces make a mesh (a flat one,
with constant z, becomes its 2D boundary polyline), lines make a polyline (2D
when z is constant), bare vertices make a point cloud. ``kind=`` overrides.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from lipsdf.errors import GeometryError, InputFileError
from lipsdf.files import PathLike, atomic_output, load_npz, sha256_of_file
from lipsdf.geometry.primitives import BUILTIN_PREFIX, builtin_shape
from lipsdf.geometry.shapes import KINDS, PointCloud, Polyline, Shape, TriangleMesh, as_index_array

MESH_FORMATS = (".obj", ".ply", ".off", ".stl", ".mesh")
POINT_FORMATS = (".xyz", ".txt", ".npz", ".ply")
READ_FORMATS = (".obj", ".ply", ".off", ".stl", ".mesh", ".xyz", ".txt", ".npz", ".geojson", ".json")


@dataclass
class _RawGeometry:
    """What a file holds, before deciding which kind of shape it is."""

    vertices: np.ndarray
    faces: np.ndarray
    edges: np.ndarray
    normals: Optional[np.ndarray] = None


def _empty_cells(width: int) -> np.ndarray:
    return np.zeros((0, width), dtype=np.int64)


def _obj_index(token: str, n_vertices: int) -> int:
    index = int(token.split("/")[0])
    return index - 1 if index > 0 else n_vertices + index


def _read_obj(path: Path) -> _RawGeometry:
    vertices: list[list[float]] = []
    faces: list[list[int]] = []
    edges: list[list[int]] = []
    with open(path, "r", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                tag = parts[0]
                if tag == "v":
                    vertices.append([float(x) for x in parts[1:4]])
                elif tag == "f":
                    ids = [_obj_index(t, len(vertices)) for t in parts[1:]]
                    faces.extend([ids[0], ids[i], ids[i + 1]] for i in range(1, len(ids) - 1))
                elif tag == "l":
                    ids = [_obj_index(t, len(vertices)) for t in parts[1:]]
                    edges.extend([ids[i], ids[i + 1]] for i in range(len(ids) - 1))
            except ValueError:
                raise InputFileError(f"{path}: line {number} is not valid OBJ: {line.strip()[:60]!r}") from None
    if not vertices:
        raise GeometryError(f"{path} has no vertices ('v' lines)")
    widths = {len(v) for v in vertices}
    if len(widths) != 1 or widths.pop() not in (2, 3):
        raise InputFileError(f"{path}: vertices must all have 2 or 3 coordinates")
    return _RawGeometry(
        np.array(vertices, dtype=np.float64),
        np.array(faces, dtype=np.int64).reshape(-1, 3),
        np.array(edges, dtype=np.int64).reshape(-1, 2),
    )


def _read_medit(path: Path) -> _RawGeometry:
    tokens = []
    with open(path, "r", errors="replace") as handle:
        for line in handle:
            tokens.extend(line.split("#", 1)[0].split())
    sections: dict[str, np.ndarray] = {}
    widths = {"vertices": None, "edges": 3, "triangles": 4}
    dimension = 3
    i = 0
    try:
        while i < len(tokens):
            keyword = tokens[i].lower()
            if keyword == "dimension":
                dimension = int(tokens[i + 1])
                i += 2
            elif keyword in widths:
                count = int(tokens[i + 1])
                width = widths[keyword] or dimension + 1
                block = np.array(tokens[i + 2: i + 2 + count * width], dtype=np.float64)
                if len(block) != count * width:
                    raise ValueError(f"section {tokens[i]} is truncated")
                sections[keyword] = block.reshape(count, width)[:, :-1]  # drop reference ids
                i += 2 + count * width
            else:
                i += 1
    except (ValueError, IndexError) as exc:
        raise InputFileError(f"{path}: not a valid MEDIT .mesh file ({exc})") from None
    if "vertices" not in sections:
        raise GeometryError(f"{path} has no Vertices section")
    return _RawGeometry(
        sections["vertices"],
        sections.get("triangles", _empty_cells(3)) - 1,  # indices are checked (whole, in range) by the shape
        sections.get("edges", _empty_cells(2)) - 1,
    )


def _read_stl(path: Path) -> _RawGeometry:
    """Binary or ASCII STL. Binary when the size is exactly 84 + 50 bytes per promised triangle; a file that
    is neither complete binary nor ASCII (``solid ... vertex x y z ...``) is refused."""
    data = path.read_bytes()
    count = int.from_bytes(data[80:84], "little") if len(data) >= 84 else -1
    if count >= 0 and len(data) == 84 + 50 * count:
        records = np.frombuffer(data, dtype=np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)),
                                                      ("attribute", "<u2")]), count=count, offset=84)
        corners = records["corners"].astype(np.float64).reshape(-1, 3)
    elif data.lstrip()[:5].lower() == b"solid":
        numbers = re.findall(rb"vertex\s+(\S+)\s+(\S+)\s+(\S+)", data)
        try:
            corners = np.array(numbers, dtype=np.float64).reshape(-1, 3)
        except ValueError:
            raise InputFileError(f"{path}: an ASCII STL vertex is not three numbers") from None
        if len(corners) % 3:
            raise InputFileError(f"{path}: ASCII STL with {len(corners)} vertices, not whole triangles (truncated?)")
    elif count >= 0:
        raise InputFileError(f"{path}: binary STL header promises {count} triangles ({84 + 50 * count} bytes), "
                             f"but the file has {len(data)} bytes (truncated or not an STL)")
    else:
        raise InputFileError(f"{path} is too short to be an STL file ({len(data)} bytes)")
    if len(corners) == 0:
        raise GeometryError(f"{path} has no triangles")
    vertices, index = np.unique(corners, axis=0, return_inverse=True)  # corners shared by triangles: one vertex
    return _RawGeometry(vertices, index.reshape(-1, 3).astype(np.int64), _empty_cells(2))


def _check_ply_header(path: Path) -> None:
    """Refuse a PLY whose header promises more elements than its body can hold, before a reader allocates them."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise InputFileError(f"{path} is not a PLY file (no 'ply' ... 'end_header' header)")
    body = path.stat().st_size - end
    binary = b"binary" in head[:end]
    sizes = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
             "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}
    needed, count, row = 0, 0, 0
    for line in head[:end].decode("ascii", "replace").splitlines() + ["element end 0"]:
        words = line.split()
        if words[:1] == ["element"] and len(words) >= 3:
            needed += count * (row if binary else 2)  # ASCII: at least a digit and a separator per element
            try:
                count, row = int(words[2]), 0
            except ValueError:
                raise InputFileError(f"{path}: PLY element count {words[2]!r} is not a number") from None
        elif words[:1] == ["property"] and len(words) >= 3:
            row += sizes.get(words[-2] if words[1] != "list" else words[2], 1)  # a list: at least its count
    if count < 0 or needed > body:
        raise InputFileError(f"{path}: PLY header promises {needed} bytes of elements, but the file holds {body} "
                             "(truncated or corrupt)")


def _read_with_trimesh(path: Path) -> _RawGeometry:
    import trimesh

    if path.suffix.lower() == ".ply":
        _check_ply_header(path)
    try:
        loaded = trimesh.load(str(path), process=False, force=None)
    except Exception as exc:  # trimesh raises many types for malformed files
        message = " ".join(str(exc).split())[:100]
        raise InputFileError(f"{path}: not a valid {path.suffix[1:].upper()} file ({type(exc).__name__}: "
                             f"{message})") from None
    if not hasattr(loaded, "vertices") and not isinstance(loaded, trimesh.Scene):
        raise InputFileError(f"{path}: not a valid {path.suffix[1:].upper()} file (no geometry)")
    if isinstance(loaded, trimesh.Scene):
        geometries = list(loaded.geometry.values())
        if not geometries:
            raise GeometryError(f"{path} holds no geometry")
        loaded = trimesh.util.concatenate(geometries) if len(geometries) > 1 else geometries[0]
    vertices = np.asarray(loaded.vertices, dtype=np.float64)
    faces = np.asarray(getattr(loaded, "faces", _empty_cells(3)), dtype=np.int64).reshape(-1, 3)
    normals = None
    raw = getattr(loaded, "metadata", {}).get("_ply_raw", {}).get("vertex", {}).get("data")
    if isinstance(raw, np.ndarray) and raw.dtype.names and {"nx", "ny", "nz"} <= set(raw.dtype.names):
        normals = np.column_stack([raw["nx"], raw["ny"], raw["nz"]]).astype(np.float64)
    if len(vertices) == 0:
        raise GeometryError(f"{path} has no vertices")
    return _RawGeometry(vertices, faces, _empty_cells(2), normals)


def _read_xyz(path: Path) -> _RawGeometry:
    data = None
    for delimiter in (None, ","):
        try:
            data = np.loadtxt(path, comments="#", delimiter=delimiter, ndmin=2)
            break
        except ValueError:
            continue
    if data is None:
        raise InputFileError(f"{path}: expected rows of 3 or 6 numbers (x y z [nx ny nz])")
    if data.size == 0:
        raise GeometryError(f"{path} has no points")
    if data.shape[1] not in (3, 6):
        raise InputFileError(f"{path}: expected 3 or 6 columns (x y z [nx ny nz]), found {data.shape[1]}")
    normals = data[:, 3:6] if data.shape[1] == 6 else None
    return _RawGeometry(data[:, :3], _empty_cells(3), _empty_cells(2), normals)


def _read_npz(path: Path) -> _RawGeometry:
    arrays = load_npz(path)
    if "metadata" in arrays:
        raise InputFileError(f"{path} is a lipsdf dataset, not a shape; give the shape file it was sampled from")
    if "points" not in arrays:
        raise InputFileError(f"{path}: a point-set .npz needs a 'points' array (found: {sorted(arrays)})")
    points, normals = arrays["points"], arrays.get("normals")
    for name, array in (("points", points), ("normals", normals)):
        if array is not None and (array.dtype.kind not in "fiu" or array.ndim != 2):
            raise InputFileError(f"{path}: {name!r} must be an (n, 3) array of numbers, got {array.dtype} "
                                 f"{array.shape}")
    return _RawGeometry(points.astype(np.float64), _empty_cells(3), _empty_cells(2),
                        None if normals is None else normals.astype(np.float64))


def _read_geojson(path: Path) -> _RawGeometry:
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: not valid JSON ({exc})") from None
    rings: list[tuple[np.ndarray, bool]] = []

    def visit(geometry: dict) -> None:
        kind, coords = geometry.get("type"), geometry.get("coordinates")
        if kind == "Polygon":
            rings.extend((np.asarray(r, dtype=float)[:, :2], True) for r in coords)
        elif kind == "MultiPolygon":
            rings.extend((np.asarray(r, dtype=float)[:, :2], True) for polygon in coords for r in polygon)
        elif kind == "LineString":
            rings.append((np.asarray(coords, dtype=float)[:, :2], False))
        elif kind == "MultiLineString":
            rings.extend((np.asarray(c, dtype=float)[:, :2], False) for c in coords)
        elif kind == "GeometryCollection":
            for g in geometry.get("geometries", []):
                visit(g)

    features = document.get("features", [document]) if isinstance(document, dict) else []
    try:
        for feature in features:
            visit(feature.get("geometry", feature) if feature.get("type") == "Feature" else feature)
    except (AttributeError, TypeError, ValueError, IndexError):
        raise InputFileError(f"{path}: not a valid GeoJSON document (malformed features or coordinates)") from None
    if not rings:
        raise GeometryError(f"{path} has no Polygon or LineString geometry")
    vertices, edges, offset = [], [], 0
    for ring, closed in rings:
        if closed and len(ring) > 1 and np.array_equal(ring[0], ring[-1]):
            ring = ring[:-1]  # GeoJSON repeats the first position at the end
        n = len(ring)
        i = np.arange(n - (0 if closed else 1))
        edges.append(np.column_stack([i, (i + 1) % n]) + offset)
        vertices.append(ring)
        offset += n
    return _RawGeometry(np.vstack(vertices), _empty_cells(3), np.vstack(edges).astype(np.int64))


_READERS = {
    ".obj": _read_obj,
    ".mesh": _read_medit,
    ".ply": _read_with_trimesh,
    ".off": _read_with_trimesh,
    ".stl": _read_stl,
    ".xyz": _read_xyz,
    ".txt": _read_xyz,
    ".npz": _read_npz,
    ".geojson": _read_geojson,
    ".json": _read_geojson,
}


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


def _to_shape(raw: _RawGeometry, kind: Optional[str], source: str) -> Shape:
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
    if suffix not in _READERS:
        raise InputFileError(
            f"unknown shape format {suffix or '(no extension)'!r} for {path.name}; "
            f"supported: {', '.join(READ_FORMATS)}"
        )
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # a damaged file's numbers overflow: the checks below say so, once
            raw = _READERS[suffix](path)
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
