"""The query commands: mesh, sample-surface, skeleton, render, on small trained fields saved to disk."""

import numpy as np
import pytest

from lipsdf.cli import main
from lipsdf.field import NeuralField
from lipsdf.geometry.io import load_shape
from lipsdf.geometry.normalize import Normalization
from lipsdf.nn import build_model

CIRCLE_CENTER, CIRCLE_RADIUS = np.array([40.0, -10.0]), 5.0
SPHERE_CENTER, SPHERE_RADIUS = np.array([3.0, -1.0, 2.0]), 2.0
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fields(tmp_path_factory, trained_circle, trained_sphere):
    folder = tmp_path_factory.mktemp("fields")
    config = {"arch": "sll", "dim": 3, "layers": 2, "width": 8}
    unsigned = NeuralField(build_model(config), Normalization(np.zeros(3), 1.0), config, kind="unsigned")
    return {"2d": trained_circle.save(folder / "circle.pt"), "3d": trained_sphere.save(folder / "sphere.pt"),
            "unsigned": unsigned.save(folder / "unsigned.pt")}


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def test_mesh_writes_a_world_unit_mesh_that_pruning_does_not_change(fields, tmp_path, capsys):
    pruned, dense = tmp_path / "s.obj", tmp_path / "dense.obj"
    code, out = _run(["mesh", fields["3d"], "--res", 48, "-o", pruned], capsys)
    assert code == 0 and "network evaluations" in out.out and "wrote" in out.out
    assert _run(["mesh", fields["3d"], "--res", 48, "--dense", "-o", dense, "-q"], capsys) == (0, capsys.readouterr())
    a, b = load_shape(pruned), load_shape(dense)
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-6)
    np.testing.assert_array_equal(a.faces, b.faces)
    radius = np.linalg.norm(a.vertices - SPHERE_CENTER, axis=1)
    assert np.abs(radius - SPHERE_RADIUS).max() < 0.03 * 2 * SPHERE_RADIUS


def test_mesh_with_several_levels_writes_one_file_each(fields, tmp_path, capsys):
    out = tmp_path / "c.obj"
    code, printed = _run(["mesh", fields["2d"], "--iso", 0, "--iso-range", -1, 1, 2, "-o", out], capsys)
    assert code == 0
    for level in ("0", "-1", "1"):
        loop = load_shape(tmp_path / f"c_iso{level}.obj")
        radius = np.linalg.norm(loop.vertices - CIRCLE_CENTER, axis=1)
        assert abs(np.median(radius) - CIRCLE_RADIUS - float(level)) < 0.05 * CIRCLE_RADIUS
    assert not out.exists()


def test_sample_surface_writes_points_with_normals(fields, tmp_path, capsys):
    out = tmp_path / "s.xyz"
    code, printed = _run(["sample-surface", fields["3d"], "-n", 500, "--res", 32, "-o", out], capsys)
    assert code == 0 and "largest |f - iso|" in printed.out
    data = np.loadtxt(out)
    assert data.shape == (500, 6)
    offset = data[:, :3] - SPHERE_CENTER
    assert np.abs(np.linalg.norm(offset, axis=1) - SPHERE_RADIUS).max() < 0.03 * 2 * SPHERE_RADIUS
    outward = np.sum(data[:, 3:] * offset / np.linalg.norm(offset, axis=1, keepdims=True), axis=1)
    assert (outward > 0.9).mean() > 0.95


def test_skeleton_of_a_disc_is_near_its_centre(fields, tmp_path, capsys):
    out = tmp_path / "k.xyz"
    code, printed = _run(["skeleton", fields["2d"], "--threshold", 0.5, "-o", out], capsys)
    assert code == 0 and "skeleton points" in printed.out
    data = np.atleast_2d(np.loadtxt(out))
    assert data.shape[1] == 3  # x y radius
    assert np.linalg.norm(data[:, :2] - CIRCLE_CENTER, axis=1).max() < 0.1 * CIRCLE_RADIUS
    assert np.abs(data[:, 2] - CIRCLE_RADIUS).max() < 0.1 * CIRCLE_RADIUS


def test_render_draws_2d_maps_and_3d_sphere_traced_images(fields, tmp_path, capsys):
    np.savetxt(tmp_path / "points.xyz", np.column_stack([CIRCLE_CENTER + [[0, 0], [1, 1]], [5, 4]]))
    code, printed = _run(["render", fields["2d"], "--res", 64, "--overlay", tmp_path / "points.xyz",
                          "-o", tmp_path / "map.png"], capsys)
    assert code == 0 and "gradient norm" in printed.out
    assert (tmp_path / "map.png").read_bytes()[:8] == PNG
    code, printed = _run(["render", fields["3d"], "--size", 40, 30, "-o", tmp_path / "shaded.png",
                          "--depth", tmp_path / "depth.png", "--normal-map", tmp_path / "normals.png"], capsys)
    assert code == 0 and "steps per ray" in printed.out and "0 stepped through" in printed.out
    for name in ("shaded", "depth", "normals"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "shaded.png").shape[:2] == (30, 40)


@pytest.mark.parametrize("argv, message", [
    (["mesh", "{tmp}/missing.pt"], "no such field file"),
    (["mesh", "{tmp}/junk.pt"], "not a readable lipsdf field"),
    (["mesh", "{3d}", "-o", "{tmp}/m.png"], "must end in"),
    (["mesh", "{2d}", "-o", "{tmp}/m.ply"], "must end in .obj or .mesh"),
    (["mesh", "{3d}", "--bounds", "0", "0", "1", "1", "-o", "{tmp}/m.obj"], "6 numbers"),
    (["mesh", "{3d}", "--iso", "100", "-o", "{tmp}/m.obj"], "no level set to write"),
    (["mesh", "{3d}", "--iso-range", "0", "1", "2.5", "-o", "{tmp}/m.obj"], "whole number"),
    (["mesh", "{unsigned}", "--iso", "0", "-o", "{tmp}/m.obj"], "unsigned field is >= 0"),
    (["skeleton", "{unsigned}", "-o", "{tmp}/m.ply"], "needs a signed field"),
    (["sample-surface", "{2d}", "--iso", "1000", "-o", "{tmp}/m.xyz"], "no level 1000"),
    (["sample-surface", "{3d}", "-o", "{tmp}/m.obj"], "must end in .ply"),
    (["skeleton", "{3d}", "--threshold", "2", "-o", "{tmp}/m.ply"], "between 0 and 1"),
    (["render", "{3d}", "--eye", "3", "-1", "2", "--target", "3", "-1", "2", "-o", "{tmp}/m.png"], "same point"),
    (["render", "{3d}", "--fov", "0", "-o", "{tmp}/m.png"], "field of view"),
    (["render", "{3d}", "--up", "0", "0", "0", "-o", "{tmp}/m.png"], "non-zero"),
    (["render", "{3d}", "--distance", "-1", "-o", "{tmp}/m.png"], "distance must be positive"),
    (["render", "{2d}", "-o", "{tmp}/m.jpg"], "must end in .png"),
    (["render", "{2d}", "--overlay", "{tmp}/none.xyz", "-o", "{tmp}/m.png"], "no such points file"),
    (["render", "{2d}", "--overlay", "{tmp}/junk.pt", "-o", "{tmp}/m.png"], "unknown points format"),
])
def test_query_bad_input_gives_one_line_status_2_and_no_output(fields, tmp_path, capsys, argv, message):
    (tmp_path / "junk.pt").write_bytes(b"not a field")
    argv = [a.format(tmp=tmp_path, **{k: str(v) for k, v in fields.items()}) for a in argv]
    before = set(tmp_path.iterdir())
    code, printed = _run(argv, capsys)
    assert code == 2
    assert message in printed.err and printed.err.count("\n") == 1 and "Traceback" not in printed.err
    assert set(tmp_path.iterdir()) == before
