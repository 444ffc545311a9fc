"""A Dask cluster for prepare and predict: `--cluster ADDRESS` or `local:N` -> a Client, and an ordered map over it.

The cluster is Dask `distributed` (the optional `mammo[cluster]` extra): a running scheduler, e.g. one that
dask-jobqueue or dask-kubernetes started, or a `LocalCluster` of N worker processes. Every worker must import
mammo and see the inputs and the output folder at the same paths as this process (a shared filesystem).

`cluster_map` is written here because distributed offers its parts, not the whole: Client.map makes one task
per item (about a millisecond of scheduler time each, against ~0.1 s of work per image) and as_completed
yields in completion order. So items are grouped into tasks of a few images, at most a few tasks per worker
thread are in flight (a folder of 50,000 files is not queued at once), and results come back in input order.
A lost worker's tasks are rerun elsewhere by the scheduler (and `retries` reruns a task that raised); a task
whose items kill every worker that tries it (a decoder crash) ends as KilledWorker, and then its items are
tried one per task, so that only the crashing item fails, with `lost(item, reason)` as its result.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

from mammo import __version__
from mammo.errors import UserError
from mammo.io.pool import ignore_sigint

if TYPE_CHECKING:
    from distributed import Client, Future

T = TypeVar("T")
R = TypeVar("R")
EXTRA = "--cluster needs Dask's distributed: pip install 'mammo[cluster]'"
CONNECT_SECONDS = 5  # how long to wait for a scheduler before saying that none answers
ITEMS_PER_TASK = 8  # images per task at most: ~0.8 s of work, so the scheduler's ~1 ms per task is negligible
TASKS_PER_THREAD = (
    4  # tasks in flight per worker thread: enough to keep each busy, few enough to balance the tail
)
RETRIES = 2  # reruns of a task that raised (a worker's transient error); lost workers are the scheduler's
LOST = (
    "a Dask worker process died while working on this file (a decoder crash?); "
    "run it alone with --workers 0 to see the error"
)


def _import_distributed() -> Any:
    """The `distributed` module, or UserError naming the extra that installs it."""
    try:
        import distributed
    except ImportError:
        raise UserError(EXTRA) from None
    return distributed


def local_workers(spec: str) -> int | None:
    """N for 'local:N' (N >= 1), None for a scheduler address; UserError for 'local:' with no count."""
    if not spec.startswith("local:"):
        return None
    count = spec.removeprefix("local:")
    if not count.isdigit() or int(count) < 1:
        raise UserError(
            f"--cluster {spec!r}: give local:N with N >= 1 worker processes, or a scheduler address"
        )
    return int(count)


def check_cluster(spec: str | None) -> None:
    """The --cluster value checked before anything loads: its form, and that Dask is installed."""
    if spec is None:
        return
    if not spec.strip():
        raise UserError("--cluster: give a scheduler address (tcp://HOST:8786) or local:N")
    local_workers(spec)
    _import_distributed()


@contextmanager
def connect(spec: str) -> Iterator[Client]:
    """A Client of the scheduler at `spec`, or of a LocalCluster of N single-threaded processes for 'local:N'.

    UserError, one line, when Dask is not installed or no scheduler answers within CONNECT_SECONDS.
    """
    check_cluster(spec)
    distributed = _import_distributed()
    n = local_workers(spec)
    if n is not None:
        with ignore_sigint():  # the worker processes leave Ctrl-C to this one, which closes them
            cluster = distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                silence_logs=logging.ERROR,
            )
        with cluster, distributed.Client(cluster) as client:
            yield client
        return
    address = spec if "://" in spec else f"tcp://{spec}"
    try:
        client = distributed.Client(address, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError) as exc:
        raise UserError(
            f"--cluster {spec}: no Dask scheduler answered within {CONNECT_SECONDS} s "
            f"({type(exc).__name__}); start one (`dask scheduler`) or check the address"
        ) from None
    with client:
        yield client


def run_chunk(fn: Callable[..., R], chunk: Sequence[T], *shared: Any) -> list[R]:
    """A task on a worker: fn(item, *shared) for each item of the chunk, in order."""
    return [fn(item, *shared) for item in chunk]


def chunk_size(n_items: int, slots: int) -> int:
    """Items per task: up to ITEMS_PER_TASK, fewer when that would leave worker threads without work."""
    return max(1, min(ITEMS_PER_TASK, math.ceil(n_items / (TASKS_PER_THREAD * max(slots, 1)))))


def cluster_map(
    client: Client,
    fn: Callable[..., R],
    items: Sequence[T],
    lost: Callable[[T, str], R],
    shared: tuple = (),
) -> Iterator[R]:
    """fn(item, *shared) for each item on the cluster, in input order, a few items per task.

    `shared` are arguments every task gets (pass big ones as futures from `client.scatter`). An item that
    kills its worker every time it is tried gets `lost(item, LOST)` instead of a result. The number of tasks
    in flight follows the workers present, so a cluster that grows while the run goes (adapt) is used.
    """
    distributed = _import_distributed()
    size = chunk_size(len(items), _threads(client))
    chunks = (items[i : i + size] for i in range(0, len(items), size))

    def submit(chunk: Sequence[T]) -> tuple[Sequence[T], Future]:
        return chunk, client.submit(run_chunk, fn, chunk, *shared, retries=RETRIES, pure=False)

    window: deque[tuple[Sequence[T], Future]] = deque()
    while True:
        room = max(0, TASKS_PER_THREAD * _threads(client) - len(window))  # fewer after a worker is lost
        window.extend(map(submit, islice(chunks, room)))
        if not window:
            return
        chunk, future = window.popleft()
        try:
            results = future.result()
        except distributed.KilledWorker:
            results = [_alone(client, fn, item, lost, shared, distributed) for item in chunk]
        except ImportError as exc:
            raise UserError(
                f"a Dask worker cannot import {exc.name or 'a module'}: install mammo[cluster] {__version__} "
                "in the workers' environment"
            ) from None
        yield from results


def _threads(client: Client) -> int:
    """Worker threads in the cluster now (at least 1, so that work is queued while workers start)."""
    return max(1, sum(client.nthreads().values()))


def _alone(
    client: Client,
    fn: Callable[..., R],
    item: T,
    lost: Callable[[T, str], R],
    shared: tuple,
    distributed: Any,
) -> R:
    """One item of a chunk that killed its workers, in a task of its own: its result, or lost(item, LOST)."""
    try:
        return client.submit(run_chunk, fn, [item], *shared, retries=RETRIES, pure=False).result()[0]
    except distributed.KilledWorker:
        return lost(item, LOST)
