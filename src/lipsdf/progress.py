"""Progress bars that show on a terminal and stay quiet otherwise."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from tqdm.auto import tqdm


def progress_enabled(quiet: bool = False) -> bool:
    return not quiet and sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(total: int, description: str, quiet: bool = False, unit: str = "pt") -> Iterator[tqdm]:
    """Yield a tqdm bar (``bar.update(n)``, ``bar.set_postfix_str(s)``) drawn on stderr only when it is a terminal."""
    bar = tqdm(total=total, desc=description, disable=not progress_enabled(quiet), leave=False, unit=unit,
               unit_scale=unit == "pt", file=sys.stderr)
    try:
        yield bar
    finally:
        bar.close()
