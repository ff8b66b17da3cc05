"""``lipsdf view``: one self-contained HTML page that draws a field in WebGL2, from its GLSL export.

The page needs no network: the shader source and the weights (base64 float32) are inside it. In 3D it
sphere-traces the level ``f = iso`` (safe for a 1-Lipschitz field, since ``|f - iso|`` never exceeds the
distance to that level; fields without the bound step by half of it), shades by the field's gradient,
shows the steps each ray took, and cuts the field by a plane drawn as a colour map with iso-lines; in 2D
it draws the field map with iso-lines and the zero level. Frames are drawn at a quarter of the
resolution while the view moves and in full once it stops. ``window.lipsdf`` offers ``ready``,
``evaluate(points)`` and ``render(view)`` to tests and to pages that embed the view.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from lipsdf.export.glsl import TEXTURE_WIDTH, glsl_source, texture_data, texture_rows
from lipsdf.export.program import Program
from lipsdf.files import PathLike, atomic_output

_PAGE = Path(__file__).with_name("view.html")


def view_page(program: Program, title: str) -> str:
    """The HTML page for ``program`` (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from lipsdf.nn import build_model
    >>> from lipsdf.field import NeuralField
    >>> from lipsdf.geometry.normalize import Normalization
    >>> from lipsdf.export.program import field_program
    >>> config = {"arch": "sll", "dim": 2, "layers": 2, "width": 8}
    >>> page = view_page(field_program(NeuralField(build_model(config), Normalization(np.zeros(2), 1.0), config)), "x")
    >>> page.startswith("<!DOCTYPE html>"), "https://" in page
    (True, False)
    """
    settings = {"dim": program.dim, "rows": texture_rows(program), "textureWidth": TEXTURE_WIDTH,
                "description": program.description, "title": title}
    weights = base64.b64encode(texture_data(program).tobytes()).decode("ascii")
    page = _PAGE.read_text()
    for key, value in (("__TITLE__", _escape(title)), ("__SETTINGS__", json.dumps(settings)),
                       ("__WEIGHTS__", weights), ("__GLSL__", json.dumps(glsl_source(program, "the page")))):
        page = page.replace(key, value)
    return page


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_view(program: Program, path: PathLike, title: str, show: bool = False) -> Path:
    """Write :func:`view_page` to ``path`` (atomically) and, with ``show``, open it in the default browser;
    returns the path."""
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text(view_page(program, title))
    if show:
        show_page(path)
    return path


def show_page(path: PathLike) -> None:
    """Open the page in the default browser."""
    import webbrowser

    webbrowser.open(Path(path).resolve().as_uri())
