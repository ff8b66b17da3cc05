"""A field as an ONNX model: input ``points`` (float32 ``[N, dim]``, world units, N dynamic), output
``distance`` (float32 ``[N]``, world units), the normalisation folded in and the weights frozen.

Exported with PyTorch's own ONNX exporter (the TorchScript-based one, which needs no more than the
``onnx`` package), checked with ``onnx.checker``; the model's metadata says what the field is
(:func:`~lipsdf.export.program.describe`). Needs ``pip install 'lipsdf[export]'``.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch

from lipsdf.errors import LipsdfError
from lipsdf.export.program import describe
from lipsdf.field import NeuralField
from lipsdf.files import PathLike, atomic_output

OPSET = 17


def _onnx():
    try:
        import onnx
    except ImportError:
        raise LipsdfError("exporting to ONNX needs the onnx package: pip install 'lipsdf[export]'") from None
    return onnx


def write_onnx(field: NeuralField, path: PathLike) -> Path:
    """Write ``field`` to ``path`` as ONNX (atomically); returns the path."""
    onnx = _onnx()
    module = copy.deepcopy(field.module).cpu().float().eval()
    example = torch.zeros(2, field.dim)
    path = Path(path)
    with atomic_output(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes about itself, nothing for the user to act on
        torch.onnx.export(module, (example,), str(tmp), input_names=["points"], output_names=["distance"],
                          dynamic_axes={"points": {0: "n"}, "distance": {0: "n"}}, opset_version=OPSET,
                          dynamo=False)
        model = onnx.load(str(tmp))
        for key, value in describe(field).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value)
        model.producer_name = "lipsdf"
        model.doc_string = (f"lipsdf {field.dim}D {field.kind} distance field ({field.arch}); input points "
                            "[N, dim] in world units, output distance [N] in world units")
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
    return path
