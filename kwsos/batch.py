"""Run one job over many files, on threads of this process or on a Dask cluster: resumable,
with per-file errors, and the results in input order.

``kwsos detect``, ``kwsos osc classify`` and ``kwsos asd score`` share this. A *job*
(:class:`BatchJob`) is a small picklable object that loads its model once per process (a keyword
bank, a classifier) and processes a list of items (files, or clips naming files). The runner
(:func:`run_batch`) cuts the items into units, runs the units (:func:`kwsos.parallel.ordered_map`
in this process, or one Dask task per unit on a cluster, :class:`DaskPool`), isolates the files
that fail, and records every finished file in a :class:`Journal`, so that a rerun after a crash or
Ctrl-C does only what is left and yields exactly what an uninterrupted run yields.

The journal
-----------
One file beside the output, append-only: a header line (the job, what its results depend on,
a hash of the item list), then one line ``<crc32> <json>`` per finished item, appended with a
single ``write`` as soon as its unit is done. A killed process therefore loses only the units in
flight. A torn last line (killed during the write, power loss) fails its checksum and is dropped
with everything after it. Rewriting a small file atomically after every item would cost O(n) per
item, O(n^2) for an archive; appending is O(1) and just as safe, because a line is believed only
when it is complete. Items that failed are recorded too (for the report) but run again on
resume: the user may have fixed them.

Threads on cluster workers: every task sets numba's and torch's thread counts to the cores its
worker has per task (a local cluster: ``cores // workers``; an existing cluster: the worker
machine's cores divided by the worker's threads) and BLAS to one thread per process, as
:func:`kwsos.parallel.single_threaded_blas` does in this process, so that results do not depend
on where a file ran.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from kwsos.errors import KwsosError
from kwsos.hooks import Hook, call_hook
from kwsos.parallel import MALLOC_SETTINGS

__all__ = [
    "JOURNAL_FORMAT",
    "BatchJob",
    "DaskPool",
    "Journal",
    "Outcome",
    "WorkerSetupError",
    "error_text",
    "item_name",
    "read_manifest",
    "run_batch",
]

log = logging.getLogger(__name__)

#: The first field of a journal's header line.
JOURNAL_FORMAT = "kwsos-journal/1"
#: Units (tasks) in flight per worker thread of a cluster: enough to hide a task's round trip,
#: few enough that a killed run has little to redo.
IN_FLIGHT_PER_THREAD = 2
#: On a cluster a unit takes at most 1 / (GUIDED_SPLIT x threads) of the bytes left
#: (guided self-scheduling, :func:`_units`).
GUIDED_SPLIT = 2


class BatchJob(Protocol):
    """What :func:`run_batch` runs: picklable (it travels to cluster workers), immutable.

    ``name`` names the command (``"detect"``); :meth:`fingerprint` is everything the results
    depend on besides the items (options, and a stamp of the model files: a journal written
    with other options or another model is refused); :meth:`load` returns the model (called
    once per process); :meth:`run` processes a list of items with it and returns one
    JSON-serialisable value per item (it raises if any item fails: the runner then retries the
    items one by one to find which); :meth:`context` is entered around all the work of a
    process (e.g. one BLAS thread).
    """

    name: ClassVar[str]

    def fingerprint(self) -> dict[str, Any]: ...

    def load(self) -> Any: ...

    def run(self, model: Any, items: list[Any]) -> list[Any]: ...

    def context(self) -> AbstractContextManager[Any]: ...


@dataclass(frozen=True)
class Outcome:
    """What became of item ``index``: its ``value`` (success) or its ``error`` (one line).

    ``duration_s`` is the audio length of the file (0 when unknown); ``resumed`` says that the
    value comes from the journal of an earlier run.
    """

    index: int
    name: str
    value: Any = None
    error: str | None = None
    duration_s: float = 0.0
    resumed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def record(self) -> dict[str, Any]:
        d: dict[str, Any] = {"i": self.index, "name": self.name, "duration_s": self.duration_s}
        if self.ok:
            d["value"] = self.value
        else:
            d["error"] = self.error
        return d


def item_name(item: Any) -> str:
    """The file an item names: the item itself (a path) or its ``path`` attribute (a clip)."""
    return str(getattr(item, "path", item))


def error_text(exc: BaseException) -> str:
    """One line for a failed item: a :class:`KwsosError`'s message, an ``OSError``'s file and
    reason, or the exception type and message of anything else."""
    if isinstance(exc, KwsosError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


# ---------------------------------------------------------------------------------- manifest
#: Column names accepted for the file column of a CSV manifest, in order of preference.
MANIFEST_COLUMNS = ("path", "filename", "file", "audio_filename", "wav")


def read_manifest(path: str | Path) -> list[str]:
    """The files listed in a manifest, in order.

    Two forms: a text file with one path per line (blank lines and lines starting with ``#``
    are skipped), or a CSV/TSV file whose header names a column ``path`` (or ``filename``,
    ``file``, ``audio_filename``, ``wav``). Relative paths stay relative, so they are read
    from the current folder, like the paths of the command line (``find data -name '*.wav' >
    files.txt`` gives a manifest for the folder it ran in); on a cluster every path must be
    readable by the workers.

    Raises
    ------
    KwsosError
        The manifest is missing, unreadable, empty, or a CSV without a file column.
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise KwsosError(f"manifest not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise KwsosError(f"cannot read manifest {path}: {' '.join(str(exc).split())}") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise KwsosError(f"manifest {path} lists no files")
    first = lines[0]
    delimiter = "\t" if "\t" in first else ","
    header = [c.strip().lower() for c in next(csv.reader([first], delimiter=delimiter))]
    is_csv = path.suffix.lower() in (".csv", ".tsv") or (
        len(header) > 1 and any(c in MANIFEST_COLUMNS for c in header)
    )
    if not is_csv:
        return [ln.strip() for ln in lines]
    column = next((c for c in MANIFEST_COLUMNS if c in header), None)
    if column is None:
        raise KwsosError(
            f"manifest {path}: no file column in the header ({', '.join(header)}); name it "
            f"{' or '.join(MANIFEST_COLUMNS[:2])}"
        )
    k = header.index(column)
    files = []
    for n, row in enumerate(csv.reader(lines[1:], delimiter=delimiter), start=2):
        if len(row) <= k or not row[k].strip():
            raise KwsosError(f"manifest {path}, row {n}: no value in column {column!r}")
        files.append(row[k].strip())
    if not files:
        raise KwsosError(f"manifest {path} lists no files")
    return files


# ----------------------------------------------------------------------------------- journal
def _items_hash(names: Sequence[str]) -> str:
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


def _line(record: dict[str, Any]) -> bytes:
    payload = json.dumps(record, separators=(",", ":"), allow_nan=True).encode()
    return b"%08x " % zlib.crc32(payload) + payload + b"\n"


def _parse(line: bytes) -> dict[str, Any] | None:
    """The record of a complete, intact line, else None."""
    if not line.endswith(b"\n") or len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        record = json.loads(payload)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


class Journal:
    """The append-only record of a run's finished items (see the module docstring).

    Use :meth:`open`; it holds an exclusive lock on the journal until :meth:`close`, so two
    runs never write one journal.
    """

    def __init__(self, path: Path, fd: int, lock: AbstractContextManager[Any]) -> None:
        self.path = path
        self._fd = fd
        self._lock = lock
        self._write_lock = threading.Lock()

    @classmethod
    def open(
        cls, path: str | Path, header: dict[str, Any], *, restart: bool = False
    ) -> tuple[Journal, dict[int, dict[str, Any]]]:
        """Open (or create) the journal at ``path`` for a run described by ``header``.

        Returns the journal and the records of the items an earlier run of the same job
        finished, by index (the last record of an item wins). A journal written by another
        run (other files, options or model) is an error unless ``restart``, which discards it.
        The file is cut after its last intact line, so new lines never follow a torn one.
        """
        from kwsos.io import file_lock, lock_path, umask_mode

        path = Path(path)
        lock = file_lock(lock_path(path), timeout_s=0, what=f"journal {path}")
        lock.__enter__()
        try:
            header = {"format": JOURNAL_FORMAT, **header}
            records: dict[int, dict[str, Any]] = {}
            good_end = 0
            if path.exists() and not restart:
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise KwsosError(f"cannot read journal {path}: {exc.strerror}") from None
                lines = data.splitlines(keepends=True)
                head = _parse(lines[0]) if lines else None
                if head is not None:
                    _check_header(path, head, header)
                    good_end = len(lines[0])
                    for line in lines[1:]:
                        rec = _parse(line)
                        if rec is None or not _valid_record(rec, header):
                            break
                        records[int(rec["i"])] = rec
                        good_end += len(line)
                # else: empty, or killed while the header was written: start afresh
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, umask_mode(0o666))
            except OSError as exc:
                raise KwsosError(f"cannot write journal {path}: {exc.strerror}") from None
            try:
                os.ftruncate(fd, good_end)
                os.lseek(fd, good_end, os.SEEK_SET)
                if good_end == 0:
                    os.write(fd, _line(header))
            except OSError as exc:
                os.close(fd)
                raise KwsosError(f"cannot write journal {path}: {exc.strerror}") from None
        except BaseException:
            lock.__exit__(*sys.exc_info())
            raise
        if good_end and len(records):
            log.info("journal %s: %d item(s) done by an earlier run", path, len(records))
        return cls(path, fd, lock), records

    def append(self, outcome: Outcome) -> None:
        """Record a finished item (one ``write``; thread-safe)."""
        line = _line(outcome.record())
        with self._write_lock:
            view = memoryview(line)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]

    def close(self, *, remove: bool = False) -> None:
        """Flush to disk and release the lock; ``remove``: delete the journal (the run's output
        is complete)."""
        if self._fd < 0:
            return
        try:
            if remove:
                self.path.unlink(missing_ok=True)
            else:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1
            self._lock.__exit__(None, None, None)


def _check_header(path: Path, found: dict[str, Any], wanted: dict[str, Any]) -> None:
    def differs(*keys: str) -> bool:
        return any(found.get(k) != wanted.get(k) for k in keys)

    why = None
    if found.get("format") != JOURNAL_FORMAT:
        why = f"it is not a kwsos journal of this version ({found.get('format')!r})"
    elif differs("job"):
        why = f"it belongs to kwsos {found.get('job')}, not {wanted.get('job')}"
    elif differs("n_items", "items"):
        why = "it was written for other files"
    elif differs("fingerprint"):
        keys = sorted(
            k
            for k in set(found.get("fingerprint") or {}) | set(wanted.get("fingerprint") or {})
            if (found.get("fingerprint") or {}).get(k) != (wanted.get("fingerprint") or {}).get(k)
        )
        why = f"it was written with other settings ({', '.join(keys) or 'options'} differ)"
    if why:
        raise KwsosError(
            f"journal {path} is from another run: {why}; rerun with --restart to discard it"
        )


def _valid_record(rec: dict[str, Any], header: dict[str, Any]) -> bool:
    i = rec.get("i")
    return (
        isinstance(i, int)
        and 0 <= i < int(header["n_items"])
        and isinstance(rec.get("name"), str)
        and ("value" in rec or isinstance(rec.get("error"), str))
    )


# ------------------------------------------------------------------------------ unit running
#: One model per worker process (the last job's), loaded on first use.
_MODEL_CACHE: dict[str, Any] = {}
_MODEL_LOCK = threading.Lock()
_CONTEXTS: dict[str, Any] = {}


def _job_key(job: BatchJob) -> str:
    return json.dumps([job.name, job.fingerprint()], sort_keys=True, default=str)


def _duration_s(name: str) -> float:
    try:
        import soundfile as sf

        info = sf.info(name)
        return float(info.frames) / float(info.samplerate)
    except Exception:  # the job decides what an unreadable file is; here it only lacks a length
        return 0.0


def _run_unit(job: BatchJob, model: Any, unit: list[tuple[int, Any]]) -> list[Outcome]:
    """Outcomes of one unit: all values from one ``job.run``, or, if that raises, each item on
    its own (so a corrupt file fails alone)."""
    items = [item for _, item in unit]
    try:
        values = job.run(model, items)
        if len(values) != len(items):
            raise RuntimeError(f"{job.name} returned {len(values)} values for {len(items)} items")
        results: list[tuple[Any, str | None]] = [(v, None) for v in values]
    except Exception as exc:
        if len(unit) == 1:
            results = [(None, error_text(exc))]
        else:
            results = []
            for item in items:
                try:
                    results.append((job.run(model, [item])[0], None))
                except Exception as exc1:
                    results.append((None, error_text(exc1)))
    out = []
    for (i, item), (value, error) in zip(unit, results, strict=True):
        name = item_name(item)
        out.append(Outcome(i, name, value, error, _duration_s(name) if error is None else 0.0))
    return out


def _set_threads(threads: int | None) -> None:
    """numba (per calling thread) and torch threads of a task on a cluster worker."""
    if threads is None:
        try:
            from distributed import get_worker

            nthreads = get_worker().state.nthreads
        except (ImportError, ValueError, AttributeError):
            nthreads = 1
        threads = max(1, (os.cpu_count() or 1) // max(1, nthreads))
    if "numba" in sys.modules:
        numba = sys.modules["numba"]
        numba.set_num_threads(max(1, min(threads, int(numba.config.NUMBA_NUM_THREADS))))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class WorkerSetupError(KwsosError):
    """A cluster worker could not load the job's model (e.g. the bank's path does not exist
    on that machine): the run stops, as it would on the first file anyway."""


def _worker_task(
    job: BatchJob, key: str, unit: list[tuple[int, Any]], threads: int | None
) -> list[Outcome]:
    """A Dask task: a unit on a worker, with the job's model and context loaded once per
    worker process (the context is entered once and kept: the process is the worker's).
    ``key`` is :func:`_job_key` of ``job``, computed once by the client."""
    with _MODEL_LOCK:
        try:
            if key not in _MODEL_CACHE:
                _MODEL_CACHE.clear()  # a long-lived worker keeps one model, not every one
                _MODEL_CACHE[key] = job.load()
            if key not in _CONTEXTS:
                ctx = job.context()
                ctx.__enter__()
                _CONTEXTS.clear()
                _CONTEXTS[key] = ctx
        except Exception as exc:
            raise WorkerSetupError(
                f"a Dask worker could not load the {job.name} model: {error_text(exc)}"
            ) from None
        model = _MODEL_CACHE[key]
    _set_threads(threads)
    return _run_unit(job, model, unit)


# --------------------------------------------------------------------------------- clusters
def _worker_environ() -> dict[str, str]:
    """The environment of a local cluster's worker processes: Dask's (BLAS and OpenMP on one
    thread) but glibc malloc's thresholds of :data:`kwsos.parallel.MALLOC_SETTINGS`.

    Dask sets ``MALLOC_TRIM_THRESHOLD_=65536`` so that a worker returns freed memory to the
    system. Setting any threshold also turns off glibc's adaptive mmap threshold, so every
    array above 128 KiB is a fresh ``mmap`` that page-faults on first touch and is unmapped when
    freed: a search took 1.38x the time it takes with glibc's defaults (benchmark (m2)). Our
    tasks allocate and free the same few MB-sized buffers file after file; keeping them (mmap
    only above 32 MiB, trim only above 256 MiB, as :func:`kwsos.parallel.tune_malloc` does for
    the command line) brings it to 0.88x. A variable the user set in this process's environment still wins
    (Dask's own rule).
    """
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.update(MALLOC_SETTINGS)
    return {k: os.environ.get(k, str(v)) for k, v in env.items() if v is not None}


@contextmanager
def _environ(env: dict[str, str], *, apply: bool = True) -> Iterator[None]:
    """The keys of ``env`` restored in ``os.environ`` after the block; set to ``env``'s values
    during it when ``apply``."""
    saved = {k: os.environ.get(k) for k in env}
    if apply:
        os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def worker_preload(job: BatchJob | type) -> list[str]:
    """The modules a local cluster's fork server imports once for the workers of ``job`` (a
    job or its class): Dask's worker and numba's compiler (:mod:`kwsos._worker_preload`), the
    job's module and the modules the job names in an optional ``preload`` attribute (what its
    first task would import, e.g. torch)."""
    cls = job if isinstance(job, type) else type(job)
    mods = ["kwsos._worker_preload", cls.__module__, *getattr(cls, "preload", ())]
    return list(dict.fromkeys(mods))


@contextmanager
def _main_script_not_rerun() -> Iterator[None]:
    """Worker processes started in the block do not re-run this process's main script.

    multiprocessing re-runs a main *script* (``kwsos``'s console script: it imports the whole
    command line, ~0.1 s) in every child it starts, so that objects pickled from ``__main__``
    can be found; the workers get no such objects from kwsos (cloudpickle sends a ``__main__``
    object by value). A main run as a module (``python -m``) is not re-run anyway."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def start_worker_server(preload: Sequence[str]) -> bool:
    """Start the fork server from which a local cluster's workers are forked, with ``preload``
    imported, unless it runs already (it lives as long as this process). Returns False where
    the platform has none (Windows): the workers are then spawned.

    A spawned worker is a fresh interpreter that imports Dask, numba's compiler and kwsos
    (~1 s each, on every worker); a worker forked from the server starts with them loaded. The
    server is forked from nobody: it is a fresh, single-threaded interpreter (its environment
    :func:`_worker_environ`'s, so BLAS starts no thread pool in it and glibc takes the
    workers' malloc settings from it), which makes forking it safe where forking this
    process, with its threads, would not be. Call it early, before loading the model here:
    the server imports while this process works.
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))  # no effect on a server that runs already
    with _environ(_worker_environ()):
        forkserver.ensure_running()
    return True


class DaskPool:
    """A Dask client: a local cluster of ``workers`` processes (one task at a time each), or
    the cluster whose scheduler is at ``scheduler`` (``tcp://host:port``). Use as a context.

    A task uses ``worker_threads`` threads for numba and torch; by default a local cluster's
    tasks get ``cores // workers`` (at least one), and on an existing cluster a task gets its
    machine's cores divided by its worker's threads. ``timeout_s``: how long to try to reach
    an existing scheduler. ``preload``: the modules a local cluster's workers find imported
    (:func:`worker_preload`, :func:`start_worker_server`). ``dashboard``: whether a local
    cluster serves Dask's dashboard (where bokeh is installed; starting it costs ~0.3 s).
    """

    def __init__(
        self,
        *,
        scheduler: str | None = None,
        workers: int | None = None,
        worker_threads: int | None = None,
        timeout_s: float = 10,
        preload: Sequence[str] = ("kwsos._worker_preload",),
        dashboard: bool = True,
    ) -> None:
        if scheduler in (None, "local"):
            scheduler = None
            workers = workers or 1
        elif not scheduler.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
            raise KwsosError(
                f"--scheduler must be 'local' or a scheduler address such as "
                f"tcp://host:8786, got {scheduler!r}"
            )
        elif workers is not None:
            raise KwsosError(
                "--workers starts a local cluster; it cannot be combined with an address"
            )
        if worker_threads is not None and worker_threads < 1:
            raise KwsosError(f"--worker-threads must be >= 1, got {worker_threads}")
        self.scheduler = scheduler
        self.workers = workers
        self.worker_threads = worker_threads
        self.timeout_s = timeout_s
        self.preload = list(preload)
        self.dashboard = dashboard
        self.client: Any = None
        self._cluster: Any = None
        self.task_threads: int | None = None

    def __enter__(self) -> DaskPool:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise KwsosError(
                "running on a Dask cluster needs dask.distributed: pip install 'kwsos[cluster]'"
            ) from None
        # the scheduler's and workers' life-cycle messages would drown kwsos --verbose's lines
        logging.getLogger("distributed").setLevel(logging.WARNING)
        if self.scheduler is None:
            assert self.workers is not None
            self.task_threads = self.worker_threads or max(1, (os.cpu_count() or 1) // self.workers)
            import dask

            env = _worker_environ()
            config: dict[str, Any] = {
                "distributed.nanny.pre-spawn-environ": env,
                # Our workers run one long task at a time, and on a machine whose cores they
                # fill, the CPU that Dask's housekeeping takes is taken from them. Dask's 20 ms
                # event-loop tick and the nannies' 100 ms memory polls: ~0.1 s of the client's
                # 0.35 s over a 10 s run on 2 workers. Work stealing rebalances queues that we
                # never let grow (at most IN_FLIGHT_PER_THREAD tasks per thread; off: ~0.3 s
                # of 10 s). The workers' statistical profiler (a thread sampling every 10 ms)
                # feeds only the dashboard's profile page (off without it: ~0.3 s of 10 s).
                "distributed.admin.tick.interval": "200ms",
                "distributed.worker.memory.monitor-interval": "500ms",
                "distributed.scheduler.work-stealing": False,
            }
            if not self.dashboard:
                config["distributed.worker.profile.enabled"] = False
            if start_worker_server(self.preload):
                config["distributed.worker.multiprocessing-method"] = "forkserver"
                import distributed.utils

                # the server runs with our preload: Dask would import its own list (pandas
                # among them) here only to set a preload that no longer has an effect
                distributed.utils._forkserver_preload_set = True
            # the nanny sets the environment in this process too before it starts a worker
            with dask.config.set(config), _environ(env, apply=False), _main_script_not_rerun():
                self._cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    silence_logs=logging.ERROR,
                    dashboard_address=":8787" if self.dashboard and _has_bokeh() else None,
                )
            self.client = Client(self._cluster)
        else:
            self.task_threads = self.worker_threads  # None: decided on each worker
            try:
                self.client = Client(self.scheduler, timeout=f"{self.timeout_s}s")
            except OSError as exc:
                raise KwsosError(
                    f"cannot reach the Dask scheduler at {self.scheduler}: {error_text(exc)}"
                ) from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's address, or None when the scheduler serves none (a local
        cluster without bokeh, a scheduler started with ``--no-dashboard``)."""
        if self._cluster is not None and not self.dashboard:
            return None  # the scheduler's HTTP server runs, but without the dashboard's pages
        try:
            if "dashboard" not in self.client.scheduler_info().get("services", {}):
                return None
            return str(self.client.dashboard_link)
        except Exception:
            return None

    @property
    def n_threads(self) -> int:
        """Worker threads of the cluster (tasks that can run at once)."""
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:
            return 1

    def map_unordered(
        self, job: BatchJob, units: Sequence[list[tuple[int, Any]]]
    ) -> Iterator[list[Outcome]]:
        """The outcomes of every unit as units finish, at most ``2 x threads`` in flight.

        A unit whose worker died (out of memory, a crash in a native library) more often than
        Dask allows becomes an error of each of its items, not of the run.
        """
        from distributed import as_completed

        pending = iter(units)
        futures: dict[Any, list[tuple[int, Any]]] = {}
        job_future = self.client.scatter(job, broadcast=True, hash=False)
        key = _job_key(job)

        def submit() -> Any:
            unit = next(pending, None)
            if unit is None:
                return None
            f = self.client.submit(
                _worker_task, job_future, key, unit, self.task_threads, pure=False
            )
            futures[f] = unit
            return f

        limit = IN_FLIGHT_PER_THREAD * self.n_threads
        started = [f for f in (submit() for _ in range(limit)) if f is not None]
        queue = as_completed(started)
        try:
            for future in queue:
                unit = futures.pop(future)
                try:
                    result = future.result()
                except WorkerSetupError:
                    raise
                except Exception as exc:  # KilledWorker, a lost connection
                    why = f"its worker failed ({error_text(exc)})"
                    result = [Outcome(i, item_name(item), None, why) for i, item in unit]
                yield result
                nxt = submit()
                if nxt is not None:
                    queue.add(nxt)
        finally:
            for f in futures:
                f.cancel()


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


# ----------------------------------------------------------------------------------- runner
def run_batch(
    job: BatchJob,
    items: Sequence[Any],
    *,
    unit_size: int = 1,
    unit_bytes: int | None = None,
    jobs: int | None = None,
    pool: DaskPool | None = None,
    journal: Journal | None = None,
    resumed: dict[int, dict[str, Any]] | None = None,
    model: Any = None,
    hook: Hook | None = None,
) -> Iterator[Outcome]:
    """The :class:`Outcome` of every item, in input order, as soon as it and all items before
    it are done.

    Parameters
    ----------
    job
        What to run (:class:`BatchJob`).
    items
        What to run it on (paths, or clips with a ``path``).
    unit_size
        Items per unit (one ``job.run`` call, one cluster task; the journal records a unit when
        it is done, so a killed run redoes at most the units in flight).
    unit_bytes
        With it, ``unit_size`` is a maximum: consecutive items go into one unit until their
        files reach this many bytes (a file that cannot be sized, e.g. one only the cluster's
        workers see, is a unit of its own). Many short files then cost one task, not one each,
        and long files still spread over the workers one by one. On a ``pool`` the cap
        shrinks as the run nears its end (:func:`_units`), so that the workers finish
        together.
    jobs
        Units run at once by threads of this process (:func:`kwsos.parallel.ordered_map`);
        ignored with a ``pool``.
    pool
        Run the units on this Dask cluster instead (the job is sent once to every worker;
        each worker loads the model once).
    journal, resumed
        Record finished items in ``journal``; skip the items in ``resumed`` (the records
        :meth:`Journal.open` returned) whose value an earlier run found: they are yielded from
        the records (``Outcome.resumed``). Items that failed before run again.
    model
        The job's model, already loaded in this process (else :meth:`BatchJob.load` here).
    hook
        ``hook("files", completed=, total=, audio_s=, resumed=)`` after each item in order:
        ``audio_s`` is the audio processed by this run so far, ``resumed`` the items taken
        from the journal.
    """
    from kwsos.parallel import ordered_map

    n = len(items)
    if unit_size < 1:
        raise ValueError(f"unit_size must be >= 1, got {unit_size}")
    done: dict[int, Outcome] = {}
    for i, rec in (resumed or {}).items():
        if "value" in rec and 0 <= i < n and rec.get("name") == item_name(items[i]):
            done[i] = Outcome(i, rec["name"], rec["value"], None, rec.get("duration_s", 0.0), True)
    todo = [i for i in range(n) if i not in done]
    units = _units(items, todo, unit_size, unit_bytes, pool.n_threads if pool else None)

    def record(outcomes: list[Outcome]) -> list[Outcome]:
        if journal is not None:
            for o in outcomes:
                journal.append(o)
        return outcomes

    if pool is not None:
        finished: Iterator[list[Outcome]] = (record(r) for r in pool.map_unordered(job, units))
        context: AbstractContextManager[Any] = nullcontext()
    else:
        local_model = job.load() if model is None else model

        def one(unit: list[tuple[int, Any]]) -> list[Outcome]:
            return record(_run_unit(job, local_model, unit))

        context = job.context()
        finished = ordered_map(one, units, jobs=jobs) if units else iter(())

    audio_s = 0.0
    nxt = 0

    def flush() -> Iterator[Outcome]:
        nonlocal nxt, audio_s
        while nxt in done:
            o = done.pop(nxt)
            if not o.resumed:
                audio_s += o.duration_s
            nxt += 1
            call_hook(hook, "files", completed=nxt, total=n, audio_s=audio_s)
            yield o

    with context:
        yield from flush()
        for outcomes in finished:
            for o in outcomes:
                done[o.index] = o
            yield from flush()
    yield from flush()
    if nxt != n:  # pragma: no cover - a unit lost by the runner
        raise RuntimeError(f"{n - nxt} item(s) were never run")


def _units(
    items: Sequence[Any],
    todo: list[int],
    unit_size: int,
    unit_bytes: int | None,
    parallel: int | None = None,
) -> list[list[tuple[int, Any]]]:
    """``todo`` cut into units of consecutive items: ``unit_size`` items, or with
    ``unit_bytes`` up to that many bytes of files (and ``unit_size`` items).

    With ``parallel`` (the tasks a cluster runs at once) the byte cap is guided: a unit takes
    at most ``1 / (GUIDED_SPLIT x parallel)`` of the bytes still to be cut, so that units are
    large (few tasks, little overhead) while there is much left and shrink to single files
    at the end, where a large unit would leave the other workers idle.
    """
    if unit_bytes is None:
        return [
            [(i, items[i]) for i in todo[k : k + unit_size]] for k in range(0, len(todo), unit_size)
        ]
    sizes = []
    for i in todo:
        try:
            sizes.append(os.stat(item_name(items[i])).st_size)
        except OSError:  # sized as a full unit: a unit of its own
            sizes.append(unit_bytes)
    remaining = sum(sizes)

    def cap() -> int:
        if not parallel:
            return unit_bytes
        return max(1, min(unit_bytes, remaining // (GUIDED_SPLIT * parallel)))

    units: list[list[tuple[int, Any]]] = []
    unit: list[tuple[int, Any]] = []
    size, limit = 0, cap()
    for i, nbytes in zip(todo, sizes, strict=True):
        if unit and (size + nbytes > limit or len(unit) >= unit_size):
            units.append(unit)
            remaining -= size
            unit, size, limit = [], 0, cap()
        unit.append((i, items[i]))
        size += nbytes
    if unit:
        units.append(unit)
    return units


def journal_header(job: BatchJob, items: Sequence[Any]) -> dict[str, Any]:
    """The header of ``job``'s journal over ``items``."""
    names = [item_name(it) for it in items]
    return {
        "job": job.name,
        "fingerprint": job.fingerprint(),
        "n_items": len(names),
        "items": _items_hash(names),
    }


def file_stamp(path: str | Path) -> list[Any]:
    """A cheap stamp of a model file or folder (every file's relative name, size and
    modification time), for :meth:`BatchJob.fingerprint`: a re-saved model changes it."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    out: list[Any] = []
    for p in files:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append(
            [str(p.relative_to(path)) if path.is_dir() else p.name, st.st_size, st.st_mtime_ns]
        )
    return out
