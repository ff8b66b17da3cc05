"""Progress bars that show on a terminal and stay quiet otherwise."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

from tqdm.auto import tqdm


def progress_enabled(quiet: bool = False) -> bool:
    return not quiet and sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(total: int, description: str, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """Yield an ``update(n)`` callable; draws a bar on stderr only when it is a terminal."""
    bar = tqdm(total=total, desc=description, disable=not progress_enabled(quiet), leave=False, unit="pt",
               unit_scale=True, file=sys.stderr)
    try:
        yield bar.update
    finally:
        bar.close()
