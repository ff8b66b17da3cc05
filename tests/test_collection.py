"""Collections: finding inputs, manifests, output names, fingerprints, and fit-many end to end (local and Ray)."""

import csv
import json

import pytest

from lipsdf.cli import main
from lipsdf.collection import find_inputs, fingerprint
from lipsdf.errors import LipsdfError
from lipsdf.geometry.io import save_shape
from lipsdf.geometry.primitives import circle, sphere

TINY = ["--quick", "-n", 1500, "--n-test", 300, "--epochs", 2, "--layers", 2, "--width", 16, "--res", 32,
        "--eval-n-uniform", 300, "--eval-n-near", 300, "--eval-pairs", 300, "--eval-n-surface", 300, "-q"]


def test_folders_are_searched_recursively_skipping_hidden_folders_and_the_output(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / ".hidden").mkdir()
    (tmp_path / "a" / "out").mkdir()
    for path in ("a/one.obj", "a/b/two.ply", "a/.hidden/three.obj", "a/out/four.obj"):
        save_shape(sphere(n_theta=6, n_phi=8), tmp_path / path)
    (tmp_path / "a" / "notes.md").write_text("not a shape")
    (tmp_path / "a" / "cloud.txt").write_text("0 0 0\n1 0 0\n0 1 0\n")  # a point cloud, not a manifest
    items, missing = find_inputs([tmp_path / "a"], exclude=tmp_path / "a" / "out")
    assert sorted(item.name for item in items) == ["cloud", "one", "two"] and missing == []


def test_manifests_give_paths_relative_to_themselves_with_options(tmp_path):
    save_shape(circle(), tmp_path / "ring.obj")
    (tmp_path / "list.txt").write_text("# shapes\nring.obj epochs=3 mode=unsigned\nbuiltin:torus\n")
    with open(tmp_path / "list.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "lr", "eval_n_pairs", "sigma"], ["ring.obj", "0.002", "500", ""]])
    items, _ = find_inputs([tmp_path / "list.txt", tmp_path / "list.csv"])
    assert [item.source for item in items] == [str(tmp_path / "ring.obj"), "builtin:torus", str(tmp_path / "ring.obj")]
    assert items[0].options == {"epochs": 3, "mode": "unsigned"}
    assert items[2].options == {"lr": 0.002, "eval_n_pairs": 500}
    names = [item.name for item in items]
    assert names[1] == "torus" and names[0] != names[2] and all(n.startswith("ring-") for n in (names[0], names[2]))
    assert names == [item.name for item in find_inputs([tmp_path / "list.txt", tmp_path / "list.csv"])[0]]


def test_per_shape_options_go_to_their_config():
    from lipsdf.pipeline import FitOptions

    options = FitOptions.from_flat({"n": 10, "epochs": 3, "width": 8, "eval_n_pairs": 5, "mode": "unsigned", "seed": 7,
                                    "time": "1m30s", "recipe": "paper"})
    assert (options.sampling, options.training, options.model, options.evaluation) == (
        {"n": 10}, {"epochs": 3}, {"width": 8}, {"n_pairs": 5})
    assert (options.mode, options.seed, options.time, options.recipe) == ("unsigned", 7, 90.0, "paper")
    assert options.seeded("sampling") == {"n": 10, "seed": 7} and options.seeded("model") == {"width": 8}
    # a row's options go on top of the command line's: groups key by key
    common = FitOptions(quick=True, training={"lr": 1e-3, "epochs": 9}, time=60)
    merged = common.merged({"epochs": 3, "arch": "mlp"})
    assert merged.training == {"lr": 1e-3, "epochs": 3} and merged.model == {"arch": "mlp"}
    assert merged.quick and merged.time == 60.0
    with pytest.raises(LipsdfError, match="unknown per-shape option 'colour'"):
        FitOptions.from_flat({"colour": "red"})
    with pytest.raises(LipsdfError, match="duration"):
        FitOptions.from_flat({"time": "soon"})


def test_fingerprint_follows_content_and_settings(tmp_path):
    path = tmp_path / "ring.obj"
    save_shape(circle(), path)
    first = fingerprint(str(path), {"training": {"epochs": 3}})
    assert fingerprint(str(path), {"training": {"epochs": 3}}) == first
    assert fingerprint(str(path), {"training": {"epochs": 4}}) != first
    save_shape(circle(radius=2.0), path)
    assert fingerprint(str(path), {"training": {"epochs": 3}}) != first


def _collection(tmp_path):
    save_shape(circle(radius=2.0, n=64), tmp_path / "ring.obj")
    (tmp_path / "broken.obj").write_text("v 0 0\nthis is not an obj\n")
    return ["builtin:flower", "builtin:sphere", str(tmp_path / "ring.obj"), str(tmp_path / "broken.obj")]


def _check_run(tmp_path, capsys, extra):
    out = tmp_path / "out"
    assert main(["fit-many", *_collection(tmp_path), "-o", out, "--workers", 2, *map(str, TINY), *extra]) == 1
    for name in ("flower", "sphere", "ring"):
        assert (out / name / f"{name}.pt").is_file() and (out / name / "metrics.json").is_file()
    assert not (out / "broken").exists()
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [(row["name"], row["status"]) for row in rows] == [("flower", "done"), ("sphere", "done"),
                                                              ("ring", "done"), ("broken", "failed")]
    assert rows[3]["reason"].startswith(str(tmp_path / "broken.obj")) and "2D coordinates" in rows[3]["reason"]
    for row in rows[:3]:
        assert float(row["max_pair_ratio"]) <= 1 + 1e-5 and float(row["mae_rel"]) > 0
    assert "median" in (out / "summary.md").read_text()
    stamps = {name: (out / name / f"{name}.pt").stat().st_mtime_ns for name in ("flower", "sphere", "ring")}
    capsys.readouterr()
    # a rerun with the same settings trains nothing
    assert main(["fit-many", *_collection(tmp_path), "-o", out, "--workers", 2, *map(str, TINY), *extra]) == 1
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [row["status"] for row in rows] == ["skipped", "skipped", "skipped", "failed"]
    assert stamps == {name: (out / name / f"{name}.pt").stat().st_mtime_ns for name in stamps}
    # other settings for one shape (a manifest option) refit that one only
    (tmp_path / "list.txt").write_text("builtin:sphere epochs=1\n")
    assert main(["fit-many", tmp_path / "list.txt", "-o", out, *map(str, TINY), *extra]) == 0
    assert json.loads((out / "sphere" / "metrics.json").read_text())["settings"]["training"]["epochs"] == 1


def test_fit_many_on_local_workers(tmp_path, capsys):
    _check_run(tmp_path, capsys, [])


def test_fit_many_on_a_local_ray_instance(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        _check_run(tmp_path, capsys, ["--engine", "ray"])
    finally:
        ray.shutdown()


@pytest.mark.parametrize("argv, message", [
    (["fit-many", "{tmp}/nothing", "-o", "{tmp}/o"], "no shape found"),
    (["fit-many", "builtin:circle", "-o", "{tmp}/file"], "not a folder"),
])
def test_bad_arguments_are_status_2(tmp_path, capsys, argv, message):
    (tmp_path / "nothing").mkdir()
    (tmp_path / "file").write_text("x")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert message in capsys.readouterr().err
