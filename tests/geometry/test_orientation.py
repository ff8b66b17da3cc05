"""Meshes from the wild: inverted, inconsistently oriented, overlapping, nested, duplicated, open, with
stray vertices. Signs are checked against each shape's analytic inside; where none is defined, the
refusal is one line."""

import json

import numpy as np
import pytest

from benchmarks.messy import icosphere, messy_shapes, mobius_strip
from lipsdf.cli import main
from lipsdf.errors import ModeError
from lipsdf.geometry import GroundTruth, TriangleMesh, save_shape
from lipsdf.geometry.orientation import orient_mesh
from lipsdf.geometry.primitives import torus
from lipsdf.sampling import sample

SUITE = messy_shapes(subdivisions=3)


@pytest.mark.parametrize("shape", [s for s in SUITE if s.inside is not None], ids=lambda s: s.name)
def test_signs_away_from_the_surface_match_the_analytic_inside(shape):
    data = sample(shape.mesh, "signed", n=20_000, n_test=400, seed=0)
    points = data.world("points")
    truth = GroundTruth(shape.mesh)
    away = truth.unsigned_distance(points) > 0.01 * np.linalg.norm(np.ptp(shape.mesh.vertices, axis=0))
    inside = data.arrays["labels"][away] < 0
    assert shape.agreement(points[away], inside) >= 0.999
    lines = "\n".join(data.metadata["diagnosis"]["lines"])
    assert shape.expect in lines, lines


def test_a_clean_mesh_is_left_as_it_is_and_an_inverted_copy_samples_identically():
    clean = torus()
    faces, report = orient_mesh(clean.vertices, clean.faces)
    assert report.turned_faces == 0 and np.array_equal(faces, clean.faces)
    inverted = TriangleMesh(clean.vertices, clean.faces[:, ::-1])
    a, b = (sample(mesh, "signed", n=4000, n_test=400, seed=3) for mesh in (clean, inverted))
    for key in a.arrays:
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key])
    assert b.metadata["diagnosis"]["inverted_components"] == 1


def test_a_nested_part_keeps_its_turn_a_cavity_or_a_solid_inside_the_solid():
    v, f = icosphere(3)
    inner_v, inner_f = icosphere(3, 0.5)
    for inner, centre_inside in ((inner_f[:, ::-1], False), (inner_f, True)):  # a cavity; eyes in a head
        mesh = TriangleMesh(np.vstack([v, inner_v]), np.vstack([f, inner + len(v)]))
        truth = GroundTruth(mesh)
        assert truth.mesh_report.nested_components == 1 and truth.mesh_report.turned_faces == 0
        assert truth.inside(np.array([[0.0, 0.0, 0.0], [0.75, 0, 0]])).tolist() == [centre_inside, True]


def test_a_mesh_without_an_inside_is_refused_in_one_line(tmp_path, capsys):
    strip = mobius_strip()
    with pytest.raises(ModeError, match="cannot be oriented consistently"):
        sample(strip, "signed", n=2000, n_test=400)
    save_shape(strip, tmp_path / "strip.obj")
    assert main(["sample", str(tmp_path / "strip.obj"), "-o", str(tmp_path / "strip.npz"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot be oriented consistently" in err and "unsigned" in err
    assert not (tmp_path / "strip.npz").exists()
    # the unsigned mode needs no inside
    assert sample(strip, "unsigned", n=2000, n_test=400).metadata["diagnosis"]["orientable"] is False


def test_sample_prints_the_diagnosis_and_the_dataset_keeps_it(tmp_path, capsys):
    v, f = icosphere(3)
    save_shape(TriangleMesh(v, f[:, ::-1]), tmp_path / "inverted.obj")
    assert main(["sample", str(tmp_path / "inverted.obj"), "-n", "2000", "--n-test", "400",
                 "-o", str(tmp_path / "d.npz")]) == 0
    out = capsys.readouterr().out
    assert "mesh: 1 component, closed, 0 non-manifold edges" in out
    assert "orientation: inverted (faces pointing inward); turned all 1,280 faces outward" in out
    header = json.loads(str(np.load(tmp_path / "d.npz")["metadata"]))
    assert header["diagnosis"]["inverted_components"] == 1


def test_point_cloud_normals_pointing_inward_or_disagreeing_are_turned():
    v, _ = icosphere(4)
    rng = np.random.default_rng(0)
    from lipsdf.geometry import PointCloud
    inside = np.array([[0.0, 0.0, 0.0], [0.5, 0.2, 0.0], [1.5, 0.0, 0.0]])
    for normals, done in ((-v, "pointed inward: flipped"),
                          (v * np.where(rng.random(len(v)) < 0.4, -1, 1)[:, None], "re-oriented")):
        truth = GroundTruth(PointCloud(v, normals))
        assert truth.inside(inside).tolist() == [True, True, False]
        assert done in truth.diagnosis()["normals"]


def test_a_large_cloud_reads_its_inside_from_a_subset_and_says_so():
    from lipsdf.geometry import PointCloud
    from lipsdf.geometry.distance import WINDING_POINTS

    points = np.random.default_rng(0).normal(size=(WINDING_POINTS + 10_000, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    truth = GroundTruth(PointCloud(points, points))
    queries = np.random.default_rng(1).uniform(-1.5, 1.5, size=(2000, 3))
    radius = np.linalg.norm(queries, axis=1)
    away = np.abs(radius - 1) > 0.05
    assert np.mean(truth.inside(queries)[away] == (radius[away] < 1)) >= 0.999
    assert f"winding numbers from {WINDING_POINTS:,} of the {len(points):,} points" in truth.diagnosis()["normals"]
