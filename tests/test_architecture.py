"""The package's shape: imports follow the pipeline, with no cycle, hidden (function-local) imports included.

Every module of ``lipsdf`` sits in one layer below; a module may import modules of its own layer or of
earlier ones, never of a later one. A new module must be placed here deliberately.
"""

import ast
import re
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "lipsdf"
README = SOURCE.parents[1] / "README.md"

# The pipeline, top to bottom. ``field`` comes before ``training``: the trainer's product is a NeuralField.
LAYERS = [
    ["lipsdf.version", "lipsdf.errors"],
    ["lipsdf.files", "lipsdf.progress"],
    ["lipsdf.geometry.queries"],
    ["lipsdf.geometry.winding", "lipsdf.geometry.normalize", "lipsdf.geometry.bvh"],
    ["lipsdf.geometry.shapes", "lipsdf.geometry.readers"],
    ["lipsdf.geometry.primitives", "lipsdf.geometry.normals", "lipsdf.geometry.surface", "lipsdf.geometry.orientation",
     "lipsdf.geometry.scan"],
    ["lipsdf.geometry.distance", "lipsdf.geometry.io"],
    ["lipsdf.geometry"],
    ["lipsdf.metrics"],
    ["lipsdf.dataset"],
    ["lipsdf.sampling"],
    ["lipsdf.nn.layers"],
    ["lipsdf.nn.models"],
    ["lipsdf.nn"],
    ["lipsdf.losses"],
    ["lipsdf.field"],
    ["lipsdf.devices"],
    ["lipsdf.training.log", "lipsdf.training.config", "lipsdf.training.offset", "lipsdf.training.muon"],
    ["lipsdf.training.step"],
    ["lipsdf.training.checkpoints"],
    ["lipsdf.training.trainer"],
    ["lipsdf.training.stacked"],
    ["lipsdf.training"],
    ["lipsdf.query.grid"],
    ["lipsdf.query.contour"],
    ["lipsdf.query.project", "lipsdf.query.skeleton", "lipsdf.query.trace"],
    ["lipsdf.query"],
    ["lipsdf.evaluate", "lipsdf.render"],
    ["lipsdf.export.program", "lipsdf.export.onnx_model"],
    ["lipsdf.export.glsl"],
    ["lipsdf.export.view", "lipsdf.export.wgsl"],
    ["lipsdf.export"],
    ["lipsdf.collection"],
    ["lipsdf.pipeline.recipes", "lipsdf.pipeline.options", "lipsdf.pipeline.budget"],
    ["lipsdf.pipeline.single"],
    ["lipsdf.pipeline.stack"],
    ["lipsdf.pipeline.many"],
    ["lipsdf.pipeline"],
    ["lipsdf.cli_parser"],
    ["lipsdf.cli"],
    ["lipsdf.__main__", "lipsdf"],
]
LAYER = {module: index for index, modules in enumerate(LAYERS) for module in modules}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in SOURCE.rglob("*.py")}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The lipsdf modules a file imports anywhere in its code (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from lipsdf.query import contour`` imports lipsdf.query.contour when that is a module
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] == "lipsdf")
    return found


def test_every_module_has_a_layer():
    assert set(_modules()) == set(LAYER), "place new modules in LAYERS (and remove gone ones)"


def test_no_module_imports_a_later_layer():
    modules = _modules()
    back_edges = [f"{name} -> {target}" for name, path in modules.items() for target in _imports(path, set(modules))
                  if LAYER[target] > LAYER[name]]
    assert back_edges == []


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    graph = {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in graph[name]:
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(target):] + [name, target]))
            if target not in state:
                visit(target, path + [name])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_the_checker_sees_hidden_imports(tmp_path):
    hidden = tmp_path / "lipsdf_like.py"
    hidden.write_text("def f():\n    from lipsdf.cli import main\n    return main\n")
    assert _imports(hidden, set(LAYER)) == {"lipsdf.cli"}


def test_library_errors_never_name_command_line_flags():
    # A Python caller never passed a flag; the CLI adds the one at fault (LipsdfError.option).
    flags = re.compile(r"[\"'][^\"'\n]*\s--[a-z][a-z-]*")
    offenders = [f"{path.name}:{number}" for path in SOURCE.rglob("*.py") if path.stem not in ("cli", "cli_parser")
                 for number, line in enumerate(path.read_text().splitlines(), 1) if flags.search(line)]
    assert offenders == []


def test_cli_is_thin():
    cli = (SOURCE / "cli.py").read_text()
    assert len(cli.splitlines()) <= 350
    # no file reading or picture building: those live in geometry.io and render
    assert not re.search(r"np\.load|loadtxt|open\(|imsave|savefig|np\.where\(result", cli)


def test_public_api_is_importable_from_the_top():
    import lipsdf

    for name in lipsdf.__all__:
        assert getattr(lipsdf, name) is not None
    code = re.search(r"```python\n(.*?)```", README.read_text(), flags=re.S).group(1)
    assert "from lipsdf import" in code and "lipsdf." not in code.split("from lipsdf import")[0]


def test_importing_the_package_stays_light():
    import subprocess
    import sys

    code = "import lipsdf, sys; assert 'torch' not in sys.modules; lipsdf.fit; assert 'torch' in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_modules_and_functions_stay_small():
    """Small modules with one job: none over 500 lines, no function over 80, the Trainer under 200."""
    long_modules, long_functions = [], []
    for path in SOURCE.rglob("*.py"):
        text = path.read_text()
        if len(text.splitlines()) > 500:
            long_modules.append(path.name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long_functions.append(f"{path.name}:{node.name}")
            if isinstance(node, ast.ClassDef) and node.name == "Trainer":
                assert node.end_lineno - node.lineno < 200
    assert long_modules == [] and long_functions == []
