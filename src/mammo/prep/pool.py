"""prepare's workers: one full image -> its samples' PNGs, in this process or in a pool that dies with it.

The pool forks its workers from a forkserver (safe after threads). Neither the server nor a worker may
outlive the run: each asks Linux to kill it when its parent exits (PR_SET_PDEATHSIG), and each worker also
watches the main process and exits when it is gone (the same on systems without prctl). Both ignore Ctrl-C:
the main process handles it, drops the queue and reports one line.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import as_completed
from contextlib import contextmanager, suppress
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from mammo.errors import UserError, without_path
from mammo.io.cluster import cluster_map
from mammo.io.dicom import read_raw_pixels
from mammo.io.images import is_dicom_path, read_image, to_uint16, write_png16
from mammo.io.pool import forkserver_context, ignore_sigint, process_pool, single_thread_cv2
from mammo.prep.breast import locate_breast, prepare_whole
from mammo.prep.plan import ImageTask, Item
from mammo.prep.roi import mask_box, prepare_roi, table_box

if TYPE_CHECKING:
    from distributed import Client

PROCESS_COLUMNS = [
    "source_rows",
    "source_cols",
    "crop_x0",
    "crop_y0",
    "crop_x1",
    "crop_y1",
    "flipped",
    "inverted",
]
PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCH_SECONDS = 1.0  # how often a worker checks that the main process is still there
DIED = (
    "a prepare worker process died (a decoder crash on some image, or, from a Python script, a call "
    "outside `if __name__ == '__main__':`); rerun to resume, or use --workers 0 to see which file"
)


def read_source(path: str) -> np.ndarray:
    """Read a full image as uint16 (DICOM with its LUTs, other formats scaled to 16 bits)."""
    return to_uint16(read_image(path))


def read_mask(path: str) -> np.ndarray:
    """Read a lesion mask as stored (no LUT or inversion), so nonzero means lesion."""
    return read_raw_pixels(path) if is_dicom_path(path) else read_image(path)


def _lesion_box(item: Item, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A finding's box from its mask file, else from the manifest's numbers; raises with a reason."""
    if item.mask_path:
        mask = read_mask(item.mask_path)
        if mask.shape[:2] != shape:
            raise ValueError(
                f"mask {item.mask_path} is {mask.shape[0]}x{mask.shape[1]}, image is {shape[0]}x{shape[1]}"
            )
        box = mask_box(mask)
        if box is None:
            raise ValueError(f"mask {item.mask_path} is empty")
        return box
    return table_box(*item.box, shape)


def _png_path(task: ImageTask, item: Item) -> Path:
    return Path(task.images_dir) / f"{item.sample_id}.png"


def _reason(exc: Exception, path: str) -> str:
    """One line for rejected.csv: the error without its path; the exception type when it is not ours."""
    text = without_path(exc, path)
    return text if isinstance(exc, (UserError, ValueError)) else f"{type(exc).__name__}: {text}"


def process_image(task: ImageTask) -> list[dict]:
    """Read one image, make and write its samples; per item {sample_id, made} or {sample_id, rejected}.

    `made` holds what processing adds to the sample's dataset.csv row (source size, crop window, flip, and
    `inverted`: whether the source was detected as stored inverted and brought to standard polarity).
    """
    try:
        img = read_source(task.image_path)
        if task.task == "whole":
            out, breast = prepare_whole(img, task.size)
        else:
            img, breast = locate_breast(img)
    except Exception as exc:  # a bad image is reported and the run goes on
        return [
            {"sample_id": it.sample_id, "rejected": [task.image_path, _reason(exc, task.image_path)]}
            for it in task.items
        ]
    outcomes = []
    for item in task.items:
        try:
            if task.task == "roi":
                out, window = prepare_roi(
                    img, _lesion_box(item, img.shape[:2]), task.size, task.context, breast.flip
                )
            else:
                window = breast.box
            write_png16(out, _png_path(task, item))
        except Exception as exc:
            where = item.mask_path or task.image_path
            outcomes.append({"sample_id": item.sample_id, "rejected": [where, _reason(exc, where)]})
            continue
        made = dict(
            zip(
                PROCESS_COLUMNS,
                [*img.shape[:2], *window, int(breast.flip), int(breast.inverted)],
                strict=True,
            )
        )
        outcomes.append({"sample_id": item.sample_id, "made": made})
    return outcomes


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits (PR_SET_PDEATHSIG); exit now if it already has."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if parent == 1:  # orphaned before prctl took effect
        os._exit(1)


def _alive(pid: int) -> bool:
    """True while process `pid` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(main_pid: int) -> None:
    """Exit this worker as soon as the main process is gone (a kill -9 leaves no one to shut the pool down)."""
    while _alive(main_pid):
        time.sleep(WATCH_SECONDS)
    os._exit(1)


def _init_worker(main_pid: int) -> None:
    """Worker set-up: die with the server and the main process, ignore Ctrl-C, one OpenCV thread each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    threading.Thread(target=_watch, args=(main_pid,), daemon=True, name="mammo-watch-main").start()
    single_thread_cv2()


def _start_forkserver() -> BaseContext:
    """The forkserver context, its server started with Ctrl-C ignored and told to die with this process."""
    from multiprocessing import forkserver

    # workers fork from a server that has imported this module once; the guard makes the server die with us
    context = forkserver_context(["mammo.prep.forkserver_guard", "mammo.prep.pool"])
    with ignore_sigint():
        forkserver.ensure_running()
    return context


@contextmanager
def _single_thread_cv2() -> Iterator[None]:
    """Run OpenCV single-threaded in this process for a while (workers=0), then restore its setting."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _process_on_worker(task: ImageTask) -> list[dict]:
    """process_image on a Dask worker, with one OpenCV thread per worker thread, as in the local pool."""
    single_thread_cv2()
    return process_image(task)


def lost_image(task: ImageTask, reason: str) -> list[dict]:
    """The outcomes of an image whose worker died on it every time (a decoder crash): each sample rejected."""
    return [{"sample_id": it.sample_id, "rejected": [task.image_path, reason]} for it in task.items]


def run_tasks(tasks: list[ImageTask], workers: int, client: Client | None = None) -> Iterator[list[dict]]:
    """Process tasks on a Dask cluster (`client`, in input order), in this process (workers=0) or in a pool of
    `workers` processes (as they finish); each task's outcomes."""
    if client is not None:
        yield from cluster_map(client, _process_on_worker, tasks, lost_image)
        return
    if workers == 0:
        with _single_thread_cv2():
            yield from map(process_image, tasks)
        return
    context = _start_forkserver()
    with process_pool(workers, context, DIED, _init_worker, (os.getpid(),)) as pool:
        for future in as_completed([pool.submit(process_image, t) for t in tasks]):
            yield future.result()
