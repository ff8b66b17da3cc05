import json

import numpy as np
import pytest

from lipsdf.errors import GeometryError, InputFileError
from lipsdf.geometry.io import load_shape, save_points, save_shape
from lipsdf.geometry.primitives import circle, helix, torus
from lipsdf.geometry.shapes import PointCloud, Polyline, TriangleMesh


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".off", ".stl", ".mesh"])
def test_mesh_round_trip(tmp_path, suffix):
    mesh = torus(n_u=12, n_v=8)
    path = tmp_path / f"torus{suffix}"
    save_shape(mesh, path)
    loaded = load_shape(path)
    assert isinstance(loaded, TriangleMesh)
    # STL stores triangles with their own corners: compare the triangles' corner coordinates.
    np.testing.assert_allclose(np.sort(loaded.vertices[loaded.faces].reshape(-1, 9), axis=0),
                               np.sort(mesh.vertices[mesh.faces].reshape(-1, 9), axis=0), atol=1e-6)


@pytest.mark.parametrize("slashes", [True, False], ids=["f 1/1 2//2 3", "f 1 2 3"])
@pytest.mark.parametrize("extra, more", [("", 0), ("vn 0 0 1\nvt 0.5 0.5\ng part\ns off\n", 0), ("f 1 2 3 4\n", 2),
                                         ("v 0 0 0 1 0 0\n", 0), ("  f 1 2 3\n", 1), ("f\t1\t2 3\n", 1)],
                         ids=["plain", "normals and groups", "a quad", "a coloured vertex", "an indented face",
                              "tabs"])
def test_obj_triangles_read_the_same_on_either_path(tmp_path, slashes, extra, more):
    """Triangle OBJs take a fast path, everything else the line-by-line one: both read the triangles written."""
    mesh = torus(n_u=12, n_v=8)
    v = "\n".join(f"v {x!r} {y!r} {z!r}" for x, y, z in mesh.vertices.tolist())
    face = "f {}/{} {}//{} {}" if slashes else "f {0} {2} {4}"
    f = "\n".join(face.format(a + 1, a + 1, b + 1, b + 1, c + 1) for a, b, c in mesh.faces)
    path = tmp_path / "torus.obj"
    path.write_text(f"# a comment\n{v}\n{extra}{f}\n")
    loaded = load_shape(path)
    assert len(loaded.faces) == len(mesh.faces) + more
    np.testing.assert_array_equal(loaded.vertices[loaded.faces[-len(mesh.faces):]], mesh.vertices[mesh.faces])


@pytest.mark.parametrize("suffix", [".obj", ".mesh"])
@pytest.mark.parametrize("shape", [circle(1.0, 32), helix(n=20)], ids=["circle", "helix"])
def test_polyline_round_trip(tmp_path, suffix, shape):
    path = tmp_path / f"curve{suffix}"
    save_shape(shape, path)
    loaded = load_shape(path)
    assert isinstance(loaded, Polyline) and loaded.kind == shape.kind
    np.testing.assert_allclose(loaded.vertices, shape.vertices)
    np.testing.assert_array_equal(loaded.edges, shape.edges)


@pytest.mark.parametrize("suffix", [".ply", ".xyz", ".txt", ".npz"])
@pytest.mark.parametrize("with_normals", [False, True])
def test_point_cloud_round_trip(tmp_path, suffix, with_normals):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3))
    normals = points / np.linalg.norm(points, axis=1, keepdims=True) if with_normals else None
    path = tmp_path / f"cloud{suffix}"
    save_points(points, path, normals)
    loaded = load_shape(path)
    assert isinstance(loaded, PointCloud)
    np.testing.assert_allclose(loaded.points, points)
    if with_normals:
        np.testing.assert_allclose(loaded.normals, normals)
    else:
        assert loaded.normals is None


def test_xyz_with_comments_and_commas(tmp_path):
    path = tmp_path / "points.txt"
    path.write_text("# exported\n0,0,0\n1,0,0\n# middle comment\n0,1,0\n0,0,1\n")
    assert load_shape(path).points.shape == (4, 3)


def test_obj_polygons_negative_indices_and_multi_vertex_lines(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0.5\nv 0 1 0\nf -4/1/1 -3/2/2 -2/3/3 -1/4/4\n")
    mesh = load_shape(path)
    assert mesh.kind == "mesh" and len(mesh.faces) == 2
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nl 1 2 3 4 1\n")
    square = load_shape(path)
    assert square.kind == "polyline2d" and square.is_closed and len(square.edges) == 4


def test_flat_triangle_mesh_becomes_its_boundary(tmp_path):
    path = tmp_path / "flat.obj"
    path.write_text("v 0 0 0\nv 2 0 0\nv 2 1 0\nv 0 1 0\nv 1 0.5 0\nf 1 2 5\nf 2 3 5\nf 3 4 5\nf 4 1 5\n")
    outline = load_shape(path)
    assert outline.kind == "polyline2d" and outline.is_closed
    assert len(outline.edges) == 4 and outline.segment_lengths().sum() == pytest.approx(6.0)
    assert load_shape(path, kind="mesh").kind == "mesh"


def test_medit_with_edges_in_3d(tmp_path):
    path = tmp_path / "network.mesh"
    path.write_text("MeshVersionFormatted 2\nDimension 3\nVertices\n4\n0 0 0 1\n1 0 0 1\n0 1 0 1\n0 0 1 1\n"
                    "Edges\n3\n1 2 0\n1 3 0\n1 4 0\nEnd\n")
    network = load_shape(path)
    assert network.kind == "polyline3d" and not network.is_closed and len(network.edges) == 3


def test_geojson_multipolygon_with_hole(tmp_path):
    outer = [[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]
    hole = [[1, 1], [1, 3], [3, 3], [3, 1], [1, 1]]
    island = [[10, 10], [11, 10], [11, 11], [10, 10]]
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
           "geometry": {"type": "MultiPolygon", "coordinates": [[outer, hole], [island]]}}]}
    path = tmp_path / "land.geojson"
    path.write_text(json.dumps(doc))
    shape = load_shape(path)
    assert shape.kind == "polyline2d" and shape.is_closed and shape.n_components == 3


def test_non_planar_2d_polyline_is_refused(tmp_path):
    path = tmp_path / "bent.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 1\nl 1 2 3\n")
    assert load_shape(path).kind == "polyline3d"
    with pytest.raises(GeometryError, match="constant z"):
        load_shape(path, kind="polyline2d")


@pytest.mark.parametrize("content, error", [
    ("", GeometryError),                                   # no vertices
    ("v 0 0 0\nv 0 0 0\nv 0 0 0\n", GeometryError),          # all points equal
    ("v 0 0 0\nv 1 0 nan\nv 0 1 0\nf 1 2 3\n", GeometryError),  # NaN
    ("v 0 0 0\nv 1 0 0\nl 1 1\n", GeometryError),            # zero-length edges only
    ("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n", GeometryError),  # zero-area faces only (collinear, planar -> no boundary)
    ("v 0 0 0\nv 1 0 0\nf 1 2 7\n", GeometryError),         # index out of range
    ("v 0 zero 0\n", InputFileError),                        # not a number
])
def test_bad_obj_files(tmp_path, content, error):
    path = tmp_path / "bad.obj"
    path.write_text(content)
    with pytest.raises(error):
        load_shape(path)


def test_missing_file_unknown_format_and_datasets_are_refused(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        load_shape(tmp_path / "missing.obj")
    (tmp_path / "shape.abc").write_text("v 0 0 0\n")
    with pytest.raises(InputFileError, match="unknown shape format"):
        load_shape(tmp_path / "shape.abc")
    np.savez(tmp_path / "data.npz", metadata=np.array("{}"), points=np.zeros((3, 3)))
    with pytest.raises(InputFileError, match="dataset"):
        load_shape(tmp_path / "data.npz")


def test_builtin_shapes_load_by_name():
    assert load_shape("builtin:circle").kind == "polyline2d"
    with pytest.raises(InputFileError, match="unknown built-in"):
        load_shape("builtin:teacup")


def test_real_shapes_load_with_the_right_kind(shared_data):
    expected = {"meshes/stanford-bunny.obj": "mesh", "meshes/suzanne.obj": "mesh", "meshes/fandisk.obj": "mesh",
                "polylines2d/idn.obj": "polyline2d", "polylines3d/fandisk_features.obj": "polyline3d",
                "pointclouds/bunny_scan_points.xyz": "pointcloud"}
    for name, kind in expected.items():
        assert load_shape(shared_data / name).kind == kind, name
    outline = load_shape(shared_data / "polylines2d" / "idn.obj")
    assert outline.is_closed and outline.n_components == 13


@pytest.mark.parametrize("content", ['{"type": "FeatureCollection", "features": [1, 2]}',
                                     '{"type": "Polygon", "coordinates": [[1, 2]]}',
                                     '[1, 2, 3]', "not json"])
def test_malformed_geojson_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    with pytest.raises((InputFileError, GeometryError)):
        load_shape(path)


@pytest.mark.parametrize("suffix", [".xyz", ".npz", ".ply"])
def test_points_written_by_lipsdf_read_back(tmp_path, suffix):
    from lipsdf.geometry.io import load_points

    points = np.random.default_rng(0).normal(size=(50, 3))
    save_points(points, tmp_path / f"p{suffix}", normals=points, scalars={"radius": np.ones(50)})
    np.testing.assert_allclose(load_points(tmp_path / f"p{suffix}")[:, :3], points)


def test_source_info_records_path_and_content_hash(tmp_path):
    import hashlib

    from lipsdf.geometry.io import source_info

    path = tmp_path / "square.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nl 1 2 3 4 1\n")
    assert source_info(path) == {"path": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert source_info("builtin:torus") == {"path": "builtin:torus"}
