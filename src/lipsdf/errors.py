"""Errors that lipsdf raises for bad input.

Every error a user can cause (a missing file, an unknown format, degenerate
geometry, an option that does not fit the data) is a :class:`LipsdfError`.
The command line prints its message on one line and exits with status 2; the
message says what is wrong and what to do about it.
"""


class LipsdfError(Exception):
    """Base class of all user-facing lipsdf errors."""


class InputFileError(LipsdfError):
    """A file is missing, unreadable, or of an unknown or malformed format."""


class GeometryError(LipsdfError):
    """Geometry is empty, degenerate, non-finite, or of the wrong dimension."""


class ModeError(LipsdfError):
    """A sampling or training mode that does not make sense for the data."""


class DatasetError(LipsdfError):
    """A dataset file is malformed or of an unsupported format version."""
