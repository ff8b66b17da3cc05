"""Many shapes: :func:`fit_many`, on a local pool of worker processes or on Ray.

Each shape is fitted exactly as :func:`~lipsdf.pipeline.single.fit` would, into its own folder; finding the
inputs, fingerprints and the summary are :mod:`lipsdf.collection`'s.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch

from lipsdf.collection import Item, Row, find_inputs, fingerprint, write_summary
from lipsdf.errors import InputFileError, LipsdfError
from lipsdf.files import PathLike
from lipsdf.field import resolve_device
from lipsdf.pipeline.single import STAGING, Say, fit
from lipsdf.pipeline.stack import STACK_SIZE, fit_stacked
from lipsdf.pipeline.options import FitOptions
from lipsdf.progress import progress_bar

ENGINES = ("local", "ray")


def fit_many(inputs: Sequence[PathLike], output: PathLike, options: Optional[FitOptions] = None, *,
             workers: Optional[int] = None, engine: str = "local", ray_address: Optional[str] = None,
             stack: Optional[int] = None, quiet: bool = True, say: Say = lambda message: None,
             **keywords: Any) -> list[Row]:
    """Fit every shape of a collection, each into ``output/NAME/`` exactly as :func:`fit` would, in parallel.

    Parameters
    ----------
    inputs : shape files, ``builtin:NAME``, folders (searched recursively) and manifests (``.csv`` with a
        ``path`` column, or ``.txt``, one path per line), with per-shape options; see :mod:`lipsdf.collection`.
    output : the folder that gets one folder per shape, ``summary.csv`` and ``summary.md``.
    options : the :class:`~lipsdf.pipeline.options.FitOptions` of every shape (its fields can also be given
        as keywords); a manifest's per-shape options go on top (``time=90s`` is a budget per shape).
    workers : shapes fitted at once (default: one per GPU when there are several, else half the cores).
        Locally each worker process gets ``cores / workers`` torch threads, and with several GPUs one GPU.
    engine : ``local`` (a pool of worker processes on this machine) or ``ray`` (one Ray task per shape).
    ray_address : the Ray cluster to join (``auto``, or ``host:port``); default: the running instance, or
        a new local one. Tasks write their outputs to ``output`` where they run, so on a cluster ``output``
        must be storage that every node sees.
    stack : networks trained together in one batched step, in this process (:mod:`lipsdf.pipeline.stack`;
        each trains as it would alone); default 16 on a GPU, and 1 (no stacking: ``workers`` processes)
        on a CPU. Local engine only.

    Returns
    -------
    One :class:`~lipsdf.collection.Row` per input, in input order: ``done``, ``skipped`` (its outputs are
    complete and were made from the same input and settings: the fingerprint in its ``metrics.json``)
    or ``failed`` (with the reason). A bad input fails alone; the others go on. An interrupted run keeps
    the shapes finished so far and the checkpoints of those under way, which a rerun resumes.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     rows = fit_many(["builtin:circle", "missing.obj"], folder, workers=1, quick=True,
    ...                     sampling={"n": 1000, "n_test": 200}, training={"epochs": 1}, resolution=32,
    ...                     evaluation={"n_uniform": 200, "n_near": 200, "n_pairs": 200, "n_surface": 200})
    >>> [(row.name, row.status) for row in rows]
    [('circle', 'done'), ('missing', 'failed')]
    """
    if engine not in ENGINES:
        raise LipsdfError(f"unknown engine {engine!r}; choose local or ray", option="engine")
    if workers is not None and workers < 1:
        raise LipsdfError(f"workers must be at least 1, got {workers}", option="workers")
    stack = _stack_size(stack, engine, FitOptions.of(options, keywords).device)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise InputFileError(f"{output} exists and is not a folder; name a folder for the outputs", option="output")
    items, missing = find_inputs(inputs, exclude=output)
    if not items and not missing:
        raise LipsdfError("no shape found in the inputs (files of a readable format, folders holding some, or "
                          "manifests)", option="inputs")
    rows = {item.name: Row(item.name, "failed", input=item.source, reason=item.options["reason"]) for item in missing}
    order = [item.name for item in items] + [item.name for item in missing]
    output.mkdir(parents=True, exist_ok=True)
    tasks = _tasks(items, FitOptions.of(options, keywords), output, rows)
    skipped = sum(row.status == "skipped" for row in rows.values())
    say(f"{len(items) + len(missing)} inputs: {len(tasks)} to fit, {skipped} up to date, {len(missing)} missing; "
        f"engine {engine}")
    if stack > 1:
        rows_of = fit_stacked(tasks, stack, _fit_row)
    else:
        rows_of = (_run_ray if engine == "ray" else _run_local)(tasks, workers or _default_workers(), ray_address)
    try:
        with progress_bar(len(tasks), "fitting shapes", quiet=quiet, unit="shape") as bar:
            for row in rows_of:
                rows[row.name] = row
                bar.update(1)
                say(_row_line(row))
    except KeyboardInterrupt as stop:
        stop.kept = (f"kept the shapes finished so far and the checkpoints of those under way in {output}; "
                     "the same command again continues")
        raise
    finally:  # also when interrupted: the summary of what is finished
        ordered = [rows[name] for name in order if name in rows]
        write_summary(ordered, output)
    return ordered


def _tasks(items: Sequence[Item], common: FitOptions, output: Path, rows: dict[str, Row]) -> list[dict[str, Any]]:
    """The fits to run: every item not up to date, with its own options on top of ``common``; the others
    (and items whose options are bad) get their row in ``rows``."""
    tasks = []
    for item in items:
        folder = output / item.name
        try:
            own = common.merged(item.options).to_dict()
            digest = fingerprint(item.source, {key: value for key, value in own.items() if key != "device"})
        except (LipsdfError, OSError) as exc:
            rows[item.name] = Row(item.name, "failed", input=item.source, reason=str(exc))
            continue
        finished = _up_to_date(folder, digest)
        if finished is not None:
            rows[item.name] = Row.from_metrics(item.name, "skipped", item.source, finished)
            continue
        tasks.append({"name": item.name, "source": item.source, "output": str(folder), "options": own,
                      "fingerprint": digest, "resume": _resumable(folder, digest)})
    return tasks


def _stack_size(stack: Optional[int], engine: str, device: Optional[str]) -> int:
    """Networks trained together: as asked, else :data:`STACK_SIZE` on a GPU (one process) and 1 (a
    process per shape) on a CPU, whose cores the worker processes share better."""
    if stack is not None and stack < 1:
        raise LipsdfError(f"a stack holds at least 1 network, got {stack}", option="stack")
    if stack is not None and stack > 1 and engine == "ray":
        raise LipsdfError("stacked training runs in one process: use the local engine, or a stack of 1",
                          option="stack")
    if stack is None:
        return STACK_SIZE if engine == "local" and resolve_device(device).type == "cuda" else 1
    return stack


def _row_line(row: Row) -> str:
    if row.reason:
        return f"{row.name}: {row.status} ({row.reason})"
    chamfer = "no contour" if row.chamfer_l1_rel is None else f"Chamfer L1 {100 * row.chamfer_l1_rel:.3f}%"
    return f"{row.name}: {row.status} in {row.seconds:.0f} s, {chamfer}"


def _default_workers() -> int:
    gpus = torch.cuda.device_count()
    return gpus if gpus > 1 else max(1, (os.cpu_count() or 1) // 2)


def _up_to_date(folder: Path, digest: str) -> Optional[dict[str, Any]]:
    """The metrics of a finished fit in ``folder`` made from the same input and settings, else None."""
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    complete = all((folder / name).is_file() for name in metrics.get("files", {}).values())
    return metrics if complete and metrics.get("fingerprint") == digest else None


def _resumable(folder: Path, digest: str) -> bool:
    try:
        return json.loads((folder / STAGING / "plan.json").read_text()).get("fingerprint") == digest
    except (OSError, json.JSONDecodeError):
        return False


def _fit_row(task: dict[str, Any]) -> Row:
    """Fit one shape of a collection; failures become rows (an interruption goes up)."""
    started = time.perf_counter()
    try:
        result = fit(task["source"], task["output"], FitOptions(**task["options"]), quiet=True,
                     fingerprint=task["fingerprint"], resume=task["resume"])
        return Row.from_metrics(task["name"], "done", task["source"], result.to_dict())
    except (LipsdfError, OSError) as exc:
        reason = str(exc) if isinstance(exc, LipsdfError) else f"{exc.strerror or exc}: {exc.filename or ''}"
    except Exception as exc:  # noqa: BLE001 - one shape's failure must not stop the others
        reason = f"{type(exc).__name__}: {exc}"
    return Row(task["name"], "failed", round(time.perf_counter() - started, 2), input=task["source"],
               reason=" ".join(reason.split()))


def _fit_task(task: dict[str, Any]) -> Row:
    """:func:`_fit_row` in a worker process or a Ray task: a stop leaves quietly (fit has kept its checkpoint)."""
    global _BUSY
    _BUSY = True
    try:
        return _fit_row(task)
    except KeyboardInterrupt:
        os._exit(128 + signal.SIGTERM)
    finally:
        _BUSY = False


def _init_worker(threads: int, gpus) -> None:
    """A local worker: its share of the cores, its own GPU, and SIGTERM as a clean stop."""
    torch.set_num_threads(threads)
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())  # before this process first touches CUDA
    signal.signal(signal.SIGTERM, _stop_worker)
    signal.signal(signal.SIGINT, _stop_worker)


_BUSY = False  # whether this worker process is fitting a shape
_TRACKER_WARNING = "ignore::UserWarning:multiprocessing.resource_tracker"


def _stop_worker(signal_number: int, frame) -> None:
    if _BUSY:
        raise KeyboardInterrupt  # fit's cleanup runs, and keeps a checkpoint for the rerun to resume
    os._exit(128 + signal_number)  # idle: nothing to clean up


def _run_local(tasks: list[dict[str, Any]], workers: int, ray_address: Optional[str]) -> Iterator[Row]:
    """A pool of ``workers`` processes (spawned: torch does not survive a fork), one shape per task."""
    if not tasks:
        return
    workers = min(workers, len(tasks))
    # A worker stopped while it holds a queue lock leaves a semaphore that multiprocessing's resource tracker
    # unlinks at exit, warning in several stderr lines; the tracker is a child interpreter, so it is told by -W.
    if _TRACKER_WARNING not in sys.warnoptions:
        sys.warnoptions.append(_TRACKER_WARNING)
    context = multiprocessing.get_context("spawn")
    gpus = None
    if torch.cuda.device_count() > 1:
        gpus = context.Queue()
        for index in range(torch.cuda.device_count()):
            gpus.put(index)
    pool = context.Pool(workers, initializer=_init_worker,
                        initargs=(max(1, (os.cpu_count() or 1) // workers), gpus))
    try:
        yield from pool.imap_unordered(_fit_task, tasks)
    except BaseException:
        pool.terminate()  # SIGTERM: workers still fitting keep their checkpoints
        raise
    finally:
        pool.close()
        pool.join()
        del pool
        gc.collect()  # finalise the pool's queues now rather than at interpreter exit


def _run_ray(tasks: list[dict[str, Any]], workers: int, ray_address: Optional[str]) -> Iterator[Row]:
    """One Ray task per shape, at most ``workers`` at once, each declaring its CPUs (and a GPU when the
    cluster has any); results come back as they finish."""
    try:
        import ray
    except ImportError:
        raise LipsdfError("the ray engine needs Ray: pip install 'lipsdf[ray]'", option="engine") from None
    if not tasks:
        return
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    resources = ray.cluster_resources()
    threads = max(1, int(resources.get("CPU", 1) // workers))
    remote = ray.remote(_ray_task).options(num_cpus=threads, num_gpus=1 if resources.get("GPU", 0) >= 1 else 0,
                                           max_retries=0)
    waiting, running = list(tasks), []
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                running.append(remote.remote(waiting.pop(0), threads))
            finished, running = ray.wait(running, num_returns=1)
            yield ray.get(finished[0])
    finally:
        for reference in running:
            ray.cancel(reference)


def _ray_task(task: dict[str, Any], threads: int) -> Row:
    torch.set_num_threads(threads)
    return _fit_task(task)
