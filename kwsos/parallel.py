"""Work on several files at once within one process: an ordered, bounded thread-pool map.

Threads, not processes: the expensive parts of the pipeline (soundfile decoding, numpy FFTs and
BLAS products, the numba DTW kernels compiled with ``nogil=True``, torch inference) release the
GIL, and threads share what is loaded once (the numba kernels, the embedding network, the
keyword templates) instead of loading it per process. The function run by the workers must not
mutate shared state.

Nested parallelism: the numba kernels and torch may themselves use a thread pool. With ``jobs``
workers, :func:`ordered_map` gives each worker ``1 / jobs`` of numba's threads (numba's thread
count is per calling thread) and torch ``1 / jobs`` of its threads for the duration of the map,
so that the two levels never run more threads than there are cores. BLAS is the caller's
business (its thread count is process-wide): :func:`single_threaded_blas` is what keyword
detection uses.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["MALLOC_SETTINGS", "default_jobs", "ordered_map", "single_threaded_blas", "tune_malloc"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Upper bound of :func:`default_jobs`: beyond a few files at once the kernels' own thread
#: pools already use the cores, and memory grows with every file in flight.
MAX_DEFAULT_JOBS = 4


#: glibc malloc thresholds of kwsos's processes (the command line, a local cluster's workers):
#: arrays below 32 MiB come from the heap and freed memory goes back to the system only above
#: 256 MiB at the heap's top (:func:`tune_malloc`).
MALLOC_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": 32 << 20, "MALLOC_TRIM_THRESHOLD_": 256 << 20}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def tune_malloc() -> bool:
    """Give this process the malloc thresholds of :data:`MALLOC_SETTINGS`, unless the user set
    either in the environment or ``KWSOS_MALLOC_TUNING=0``. Returns whether they are in force
    (False where malloc is not glibc's).

    A search allocates and frees the same few MB-sized arrays file after file and block after
    block. glibc hands arrays above its mmap threshold (128 KiB at first, adapting upwards) out
    as fresh mappings that page-fault on first touch and are unmapped when freed; keeping them
    in the heap saves that work: ``kwsos detect`` on an hour of audio with an HFCC bank is
    ~13 % faster at the same peak memory (benchmark (m2)). For the command line only: a
    library does not change its host's allocator.
    """
    if (
        any(k in os.environ for k in MALLOC_SETTINGS)
        or os.environ.get("KWSOS_MALLOC_TUNING") == "0"
    ):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success (musl's stub and other C libraries: 0)
    return (
        mallopt(_M_MMAP_THRESHOLD, MALLOC_SETTINGS["MALLOC_MMAP_THRESHOLD_"]) == 1
        and mallopt(_M_TRIM_THRESHOLD, MALLOC_SETTINGS["MALLOC_TRIM_THRESHOLD_"]) == 1
    )


def default_jobs() -> int:
    """Files processed at once by default: ``min(4, number of CPU cores)``."""
    return max(1, min(MAX_DEFAULT_JOBS, os.cpu_count() or 1))


def _numba_threads_per_worker(jobs: int) -> int | None:
    """numba threads for each of ``jobs`` workers, or None when numba is not loaded (the
    sliding-window detector never needs it)."""
    if "numba" not in sys.modules:
        return None
    import numba

    return max(1, int(numba.config.NUMBA_NUM_THREADS) // jobs)


def single_threaded_blas() -> Any:
    """A context in which every loaded BLAS library runs on one thread (threadpoolctl).

    For work made of many small matrix products, above all the DTW kernels, which call BLAS from
    inside numba threads: there a multi-threaded OpenBLAS only adds workers that spin after
    every product (measured on 2 cores: the same wall time for one file at twice the CPU time,
    and two files at once no faster than one; with one BLAS thread, 1.8x faster on one file
    with numba's two threads and 2x with two files at once). It also makes the float32
    products, hence the DTW costs, the same whatever the number of files processed at once
    (OpenBLAS rounds differently on one thread and on several). The limit is process-wide:
    set it in the thread that starts the workers, around all of them.
    """
    from threadpoolctl import threadpool_limits

    if "numba" in sys.modules:
        # numba's np.dot calls scipy's BLAS; load it now, or the limit would miss it
        import scipy.linalg.cython_blas  # noqa: F401
    return threadpool_limits(limits=1, user_api="blas")


def _safe_jobs(jobs: int) -> int:
    """``jobs``, or 1 where numba's threading layer is ``workqueue``: it aborts the process when
    two threads launch parallel kernels at the same time (``tbb`` and ``omp`` allow it)."""
    if jobs <= 1 or "numba" not in sys.modules:
        return jobs
    import numba

    numba.get_num_threads()  # starts the threading layer, so that its name is known
    if numba.threading_layer() == "workqueue":
        log.info(
            "numba's workqueue threading layer is not thread-safe; processing one file at a time "
            "(install tbb for concurrent files)"
        )
        return 1
    return jobs


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], *, jobs: int | None = None, window: int | None = None
) -> Iterator[R]:
    """``fn(item)`` for every item, computed by ``jobs`` threads, yielded in input order.

    At most ``window`` items (default ``2 * jobs``) are in flight (running or finished but not
    yet yielded), so memory stays bounded however many items there are. ``jobs=None``:
    :func:`default_jobs`; ``jobs=1`` runs in the calling thread (no pool).

    The first exception raised by ``fn`` is re-raised when its item's turn comes (earlier items
    are yielded first); items not started yet are cancelled.
    """
    n_jobs = default_jobs() if jobs is None else int(jobs)
    if n_jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    n_jobs = _safe_jobs(n_jobs)
    if n_jobs == 1:
        for item in items:
            yield fn(item)
        return
    window = max(n_jobs, 2 * n_jobs if window is None else int(window))
    numba_threads = _numba_threads_per_worker(n_jobs)
    torch_threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None

    def init_worker() -> None:
        if numba_threads is not None:
            sys.modules["numba"].set_num_threads(numba_threads)  # per thread
        if torch_threads is not None:
            sys.modules["torch"].set_num_threads(max(1, torch_threads // n_jobs))

    pending: deque[Future[R]] = deque()
    pool = ThreadPoolExecutor(n_jobs, thread_name_prefix="kwsos", initializer=init_worker)
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True)
        if torch_threads is not None:
            sys.modules["torch"].set_num_threads(torch_threads)
