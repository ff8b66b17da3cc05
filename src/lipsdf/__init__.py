"""lipsdf: 1-Lipschitz neural distance fields.

The pipeline is ``load_shape -> sample -> train -> query``; see the README.
"""

__version__ = "0.1.0"

from lipsdf.errors import LipsdfError  # noqa: E402

__all__ = ["LipsdfError", "__version__"]
