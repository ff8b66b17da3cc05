"""Taking a field out of Python: ONNX, GLSL ES 3.00, WGSL, and a self-contained WebGL2 page.

- :mod:`~lipsdf.export.program`: the network as a flat program over one weight array;
- :mod:`~lipsdf.export.onnx_model`: ONNX (the graph written from the program, ``onnx.checker``, metadata);
- :mod:`~lipsdf.export.glsl`: ``float lipsdf_distance(vecD p)`` with its weights as a float texture;
- :mod:`~lipsdf.export.wgsl`: ``fn lipsdf_distance(p: vecDf) -> f32`` with its weights in a storage buffer;
- :mod:`~lipsdf.export.view`: ``lipsdf view``'s page.
"""

from __future__ import annotations

from pathlib import Path

from lipsdf.errors import InputFileError
from lipsdf.export.glsl import glsl_source, texture_data
from lipsdf.export.onnx_model import write_onnx
from lipsdf.export.program import Program, describe, field_program
from lipsdf.export.view import show_page, view_page, write_view
from lipsdf.export.wgsl import wgsl_source
from lipsdf.field import NeuralField
from lipsdf.files import PathLike, atomic_output

EXPORT_FORMATS = (".onnx", ".glsl", ".wgsl")


def export_field(field: NeuralField, path: PathLike) -> list[Path]:
    """Write ``field`` in the format of ``path``'s suffix; returns the files written.

    ``.onnx``: one ONNX model. ``.glsl``: the source, and beside it ``NAME.weights.bin`` (the weights as
    float32, for the texture the source reads). ``.wgsl``: the source, and the same weights file beside it
    (for the storage buffer the source reads).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from lipsdf.nn import build_model
    >>> from lipsdf.geometry.normalize import Normalization
    >>> config = {"arch": "sll", "dim": 3, "layers": 2, "width": 8}
    >>> field = NeuralField(build_model(config), Normalization(np.zeros(3), 1.0), config)
    >>> [p.name for p in export_field(field, Path(tempfile.mkdtemp()) / "f.glsl")]
    ['f.glsl', 'f.weights.bin']
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return [write_onnx(field, path)]
    if suffix in (".glsl", ".wgsl"):
        program = field_program(field)
        weights = path.with_suffix(".weights.bin")
        with atomic_output(weights) as tmp:
            tmp.write_bytes(texture_data(program).tobytes())
        with atomic_output(path) as tmp:
            tmp.write_text((glsl_source if suffix == ".glsl" else wgsl_source)(program, weights.name))
        return [path, weights]
    raise InputFileError(f"unknown export format {suffix or '(no extension)'!r} for {path.name}; "
                         f"choose one of: {', '.join(EXPORT_FORMATS)}", option="output")


__all__ = ["EXPORT_FORMATS", "Program", "describe", "export_field", "field_program", "glsl_source", "show_page", "view_page",
           "wgsl_source", "write_onnx", "write_view"]
