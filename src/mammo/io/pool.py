"""An ordered, bounded map over a forkserver process pool, for reading and decoding many images beside a model.

concurrent.futures' `map` submits every item at once and keeps every result until it is consumed; when the
consumer (a model) is slower than the readers, a folder of 10,000 mammograms would pile up in memory. This
keeps at most `ahead` items in flight and yields results in input order, so the caller can batch them.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from typing import TypeVar

import cv2

from mammo.errors import DataError

T = TypeVar("T")
R = TypeVar("R")


def single_thread_cv2() -> None:
    """One OpenCV thread in a worker process, so that `workers` is the number of cores used."""
    cv2.setNumThreads(1)


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    preload: Sequence[str] = (),
    ahead: int | None = None,
) -> Iterator[R]:
    """fn over items in input order: in this process (workers=0) or in `workers` forkserver processes.

    forkserver, not fork: forking a process that already runs threads (torch, tqdm's monitor, OpenCV) can
    deadlock the child. `preload` names modules the server imports once, so each worker starts warm; at
    most `ahead` (default 4 per worker) items are in flight. A worker that dies is a DataError.
    """
    if workers <= 0:
        yield from map(fn, items)
        return
    context = multiprocessing.get_context("forkserver")
    if preload:
        context.set_forkserver_preload(list(preload))
    ahead = ahead or 4 * workers
    source = iter(items)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=single_thread_cv2)
    try:
        window: deque[Future[R]] = deque(pool.submit(fn, x) for x in islice(source, ahead))
        while window:
            result = window.popleft().result()
            window.extend(pool.submit(fn, x) for x in islice(source, 1))
            yield result
    except BrokenProcessPool:
        raise DataError(
            "a worker process died (a decoder crash on some file, or, from a Python script, a call outside "
            "`if __name__ == '__main__':`); rerun with --workers 0 to see which file"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
