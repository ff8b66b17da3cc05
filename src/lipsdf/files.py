"""Atomic file output: a file is either fully written or not there at all."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import signal
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from lipsdf.errors import InputFileError

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds.

    An interrupted or failing writer leaves neither a partial file nor the
    temporary one behind, and an existing file at ``path`` stays untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_output(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    if path.is_dir():
        raise InputFileError(f"output path {path} is a directory; give a file name")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputFileError(f"output directory {directory} does not exist; create it first")
    tmp = None
    try:
        # A stop signal (Ctrl-C, SIGTERM) between creating the temporary file and knowing its name would
        # leave it behind: the signals wait until the name is known.
        with _signals_deferred():
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=directory)
            os.close(fd)
            tmp = Path(tmp_name)
        yield tmp
        # mkstemp makes the file private (0600); give it the mode a plain open() would have.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (where the platform can) for the duration of the block."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    stops = {signal.SIGINT, signal.SIGTERM}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_of_file(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_npz(path: PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file from anywhere, or a one-line :class:`InputFileError`.

    Never unpickles (object arrays are refused), and checks each array's header against the
    bytes the archive really holds before allocating it, so a header that promises 10^12
    elements costs nothing. Truncated, corrupt or foreign files are errors, not tracebacks.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.npz"
    >>> np.savez(target, points=np.zeros((2, 3)))
    >>> load_npz(target)["points"].shape
    (2, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"no such file: {path}")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                if info.file_size > max(100 * info.compress_size, 256 << 20):
                    raise InputFileError(f"{path}: array {info.filename[:-4]!r} would inflate {info.compress_size} "
                                         f"bytes to {info.file_size}; refusing a likely zip bomb")
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read_header is None:
                        raise InputFileError(f"{path}: array format version {version} is not supported")
                    shape, fortran, dtype = read_header(member)
                    if dtype.hasobject:
                        raise InputFileError(f"{path}: array {info.filename[:-4]!r} holds Python objects, which "
                                             "lipsdf never unpickles")
                    needed = math.prod(shape) * dtype.itemsize
                    if needed > info.file_size:
                        raise InputFileError(f"{path}: array {info.filename[:-4]!r} claims shape {shape} "
                                             f"({needed} bytes) but the file holds {info.file_size}")
                    data = member.read(needed)
                if len(data) != needed:
                    raise InputFileError(f"{path}: array {info.filename[:-4]!r} is truncated")
                array = np.frombuffer(data, dtype=dtype)
                arrays[info.filename[:-4]] = (array.reshape(shape[::-1]).T if fortran else array.reshape(shape)).copy()
    except InputFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, KeyError,
            RuntimeError) as exc:
        message = " ".join(str(exc).split())[:120]
        raise InputFileError(f"{path} is not a readable .npz file ({type(exc).__name__}: {message})") from None
    return arrays
