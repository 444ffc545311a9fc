"""An ordered, bounded map over a forkserver process pool, for reading and decoding many images beside a model.

concurrent.futures' `map` submits every item at once and keeps every result until it is consumed; when the
consumer (a model) is slower than the readers, a folder of 10,000 mammograms would pile up in memory. This
keeps at most `ahead` items in flight and yields results in input order, so the caller can batch them.
The forkserver context and the pool's lifetime (queue dropped on the way out, a dead worker a DataError) are
shared with prepare's pool (`mammo.prep.pool`).
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from itertools import islice
from multiprocessing.context import BaseContext
from typing import TypeVar

import cv2

from mammo.errors import DataError

T = TypeVar("T")
R = TypeVar("R")
DIED = (
    "a worker process died (a decoder crash on some file, or, from a Python script, a call outside "
    "`if __name__ == '__main__':`); rerun with --workers 0 to see which file"
)


@contextmanager
def ignore_sigint() -> Iterator[None]:
    """Ignore Ctrl-C while children are started, so they inherit SIG_IGN from their first instruction on.

    A spawned Python keeps an inherited SIG_IGN (it installs KeyboardInterrupt only over the default), so
    the children leave Ctrl-C to this process, which stops them itself and reports one line.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def single_thread_cv2() -> None:
    """One OpenCV thread in a worker process, so that `workers` is the number of cores used."""
    cv2.setNumThreads(1)


def forkserver_context(preload: Sequence[str] = ()) -> BaseContext:
    """The forkserver context, its server told to import `preload` once so that each worker starts warm.

    forkserver, not fork: forking a process that already runs threads (torch, tqdm's monitor, OpenCV) can
    deadlock the child on a lock held by a thread that does not exist there.
    """
    context = multiprocessing.get_context("forkserver")
    if preload:
        context.set_forkserver_preload(list(preload))
    return context


@contextmanager
def process_pool(
    workers: int,
    context: BaseContext,
    died: str,
    initializer: Callable[..., None] = single_thread_cv2,
    initargs: tuple = (),
) -> Iterator[ProcessPoolExecutor]:
    """A process pool that drops its queue on the way out (an error, Ctrl-C); a dead worker is DataError(died)."""
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)
    try:
        yield pool
    except BrokenProcessPool:
        raise DataError(died) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    preload: Sequence[str] = (),
    ahead: int | None = None,
) -> Iterator[R]:
    """fn over items in input order: in this process (workers=0) or in `workers` forkserver processes.

    `preload` names modules the forkserver imports once; at most `ahead` (default 4 per worker) items are in
    flight. A worker that dies is a DataError.
    """
    if workers <= 0:
        yield from map(fn, items)
        return
    ahead = ahead or 4 * workers
    source = iter(items)
    with process_pool(workers, forkserver_context(preload), DIED) as pool:
        window: deque[Future[R]] = deque(pool.submit(fn, x) for x in islice(source, ahead))
        while window:
            result = window.popleft().result()
            window.extend(pool.submit(fn, x) for x in islice(source, 1))
            yield result
