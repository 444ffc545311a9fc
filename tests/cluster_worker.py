"""A Dask worker preload for test_cluster: each image takes a little longer (so a run can be killed midway),
and a file named *crash* kills its worker process, as a crash inside a C decoder would."""

import os
import signal
import time

import mammo.prep.pool as pool

SECONDS_PER_IMAGE = 0.1  # the work of a real mammogram, roughly
# Dask may import a preload file more than once: wrap the real reader, never our own wrapper
_real_read_source = getattr(pool.read_source, "wrapped", pool.read_source)


def read_source(path: str):
    """The real reader, after a pause; SIGKILL of this worker for a *crash* file."""
    if "crash" in os.path.basename(path):
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(SECONDS_PER_IMAGE)
    return _real_read_source(path)


read_source.wrapped = _real_read_source
pool.read_source = read_source
