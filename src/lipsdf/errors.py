"""Errors that lipsdf raises for bad input.

Every error a user can cause (a missing file, an unknown format, degenerate
geometry, an option that does not fit the data) is a :class:`LipsdfError`.
Its message says what is wrong, and what to do about it, in the library's
own terms (modes, losses, config fields), never in command-line flags: a
Python caller never passed any. Where one setting is at fault the error names
it in ``option`` (a config field or function parameter, such as ``mode`` or
``final_margin``); the command line maps it to its flag, prints one line and
exits with status 2.
"""

from __future__ import annotations

from typing import Optional


class LipsdfError(Exception):
    """Base class of all user-facing lipsdf errors.

    Examples
    --------
    >>> error = LipsdfError("the learning rate must be positive", option="lr")
    >>> str(error), error.option
    ('the learning rate must be positive', 'lr')
    """

    def __init__(self, message: str, *, option: Optional[str] = None) -> None:
        super().__init__(message)
        self.option = option


class InputFileError(LipsdfError):
    """A file is missing, unreadable, or of an unknown or malformed format."""


class GeometryError(LipsdfError):
    """Geometry is empty, degenerate, non-finite, or of the wrong dimension."""


class ModeError(LipsdfError):
    """A sampling or training mode that does not make sense for the data."""


class DatasetError(LipsdfError):
    """A dataset file is malformed or of an unsupported format version."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (Ctrl-C, SIGTERM). Layers that keep something for a later
    ``--resume`` say what in ``kept``; cleanup on the way up removes everything else."""

    def __init__(self, signal_number: int = 2, kept: str = "") -> None:
        super().__init__(signal_number)
        self.signal_number = signal_number
        self.kept = kept
