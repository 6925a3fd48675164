"""kwsos.batch: manifests, the journal (torn lines, checksums, headers, locks), the runner (order,
per-file errors, resuming without redoing work) and the Dask pool."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from kwsos.batch import (
    DaskPool,
    Journal,
    Outcome,
    WorkerSetupError,
    error_text,
    journal_header,
    read_manifest,
    run_batch,
)
from kwsos.errors import KwsosError


@dataclass(frozen=True)
class SquareJob:
    """Items are 'dir/<k>.wav' names; the value is k squared; names in ``fail`` raise."""

    name: ClassVar[str] = "square"
    fail: tuple[str, ...] = ()
    calls: list = field(default_factory=list, compare=False, hash=False)

    def fingerprint(self) -> dict[str, Any]:
        return {"fail": list(self.fail)}

    def load(self) -> str:
        return "model"

    def run(self, model: str, items: list[Any]) -> list[Any]:
        assert model == "model"
        self.calls.append(list(items))
        for it in items:
            if it in self.fail:
                raise KwsosError(f"cannot read audio file {it}: broken")
        return [int(Path(it).stem) ** 2 for it in items]

    def context(self) -> Any:
        return nullcontext()


def names(n: int) -> list[str]:
    return [f"d/{k}.wav" for k in range(n)]


def ran(job: SquareJob) -> list[str]:
    return [it for call in job.calls for it in call]


# ---------------------------------------------------------------------------------- manifest
def test_read_manifest_text_and_csv(tmp_path):
    m = tmp_path / "files.txt"
    m.write_text("# my archive\na.wav\n\n  sub/b c.flac  \n#c.wav\nd.wav\n")
    assert read_manifest(m) == ["a.wav", "sub/b c.flac", "d.wav"]
    c = tmp_path / "files.csv"
    c.write_text('speaker,path,duration\ns1,a.wav,3\ns2,"x,y.wav",4\n')
    assert read_manifest(c) == ["a.wav", "x,y.wav"]
    t = tmp_path / "files.tsv"
    t.write_text("filename\tlabel\na.wav\tx\nb.wav\ty\n")
    assert read_manifest(t) == ["a.wav", "b.wav"]
    # a header naming a file column makes any file a CSV
    h = tmp_path / "list"
    h.write_text("path,n\na.wav,1\n")
    assert read_manifest(h) == ["a.wav"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.csv", "speaker,duration\ns1,3\n", "no file column"),
        ("m.csv", "path,n\na.wav,1\n,2\n", "row 3: no value in column 'path'"),
        ("m.txt", "# only a comment\n\n", "lists no files"),
        ("m.csv", "path\n", "lists no files"),
    ],
)
def test_read_manifest_errors(tmp_path, name, text, message):
    m = tmp_path / name
    m.write_text(text)
    with pytest.raises(KwsosError, match=message):
        read_manifest(m)
    with pytest.raises(KwsosError, match="manifest not found"):
        read_manifest(tmp_path / "missing.txt")


def test_error_text_is_one_line():
    assert error_text(KwsosError("cannot read\n  x.wav")) == "cannot read x.wav"
    assert error_text(FileNotFoundError(2, "No such file", "a.wav")) == "a.wav: No such file"
    assert error_text(ValueError("bad\nshape")) == "ValueError: bad shape"


# ------------------------------------------------------------------------------------ runner
def test_outcomes_in_input_order_whatever_the_units_and_threads():
    for unit_size, jobs in [(1, 1), (4, 3), (5, 2), (100, 1)]:
        job = SquareJob()
        out = list(run_batch(job, names(23), unit_size=unit_size, jobs=jobs))
        assert [o.index for o in out] == list(range(23))
        assert [o.value for o in out] == [k * k for k in range(23)]
        assert all(o.ok and not o.resumed for o in out)
        assert sorted(ran(job)) == sorted(names(23))  # each item once


def test_a_failing_item_fails_alone_and_its_unit_is_retried_item_by_item():
    job = SquareJob(fail=("d/6.wav",))
    out = list(run_batch(job, names(10), unit_size=4, jobs=2))
    assert [o.ok for o in out] == [k != 6 for k in range(10)]
    assert out[6].error == "cannot read audio file d/6.wav: broken" and out[6].value is None
    assert [o.value for o in out if o.ok] == [k * k for k in range(10) if k != 6]
    assert ["d/4.wav", "d/5.wav", "d/6.wav", "d/7.wav"] in job.calls  # the whole unit first
    assert [["d/4.wav"], ["d/5.wav"], ["d/6.wav"], ["d/7.wav"]] == [
        c for c in job.calls if len(c) == 1
    ]


def test_hook_counts_files_in_order():
    seen = []
    list(run_batch(SquareJob(), names(5), hook=lambda step, **kw: seen.append((step, kw))))
    assert [kw["completed"] for _, kw in seen] == [1, 2, 3, 4, 5]
    assert {step for step, _ in seen} == {"files"} and seen[-1][1]["total"] == 5


def _open(path: Path, job: SquareJob, items: list[str], **kw: Any):
    return Journal.open(path, journal_header(job, items), **kw)


def test_a_run_stopped_half_way_resumes_without_redoing_finished_units(tmp_path):
    items = names(20)
    full = [o.value for o in run_batch(SquareJob(), items)]
    path = tmp_path / "out.journal"
    job = SquareJob()
    journal, done = _open(path, job, items)
    assert done == {}
    gen = run_batch(job, items, unit_size=3, jobs=1, journal=journal)
    first = [next(gen) for _ in range(7)]  # units 0-2 finished and recorded, unit 3 never started
    gen.close()  # the "kill": nothing after this point is recorded
    journal.close()
    assert [o.value for o in first] == full[:7]
    assert sorted(ran(job)) == sorted(items[:9])

    job2 = SquareJob()
    journal, done = _open(path, job2, items)
    assert sorted(done) == list(range(9))
    out = list(run_batch(job2, items, unit_size=3, jobs=2, journal=journal, resumed=done))
    journal.close(remove=True)
    assert [o.value for o in out] == full
    assert [o.resumed for o in out] == [k < 9 for k in range(20)]
    assert sorted(ran(job2)) == sorted(items[9:])  # nothing searched twice
    assert not path.exists()


def test_failed_items_are_recorded_and_run_again_on_resume(tmp_path):
    items, path = names(6), tmp_path / "j"
    job = SquareJob(fail=("d/2.wav",))
    journal, _ = _open(path, job, items)
    assert not list(run_batch(job, items, journal=journal))[2].ok
    journal.close()
    job2 = SquareJob(fail=("d/2.wav",))
    journal, done = _open(path, job2, items)
    assert done[2]["error"] == "cannot read audio file d/2.wav: broken"
    out = list(run_batch(job2, items, journal=journal, resumed=done))
    journal.close()
    assert ran(job2) == ["d/2.wav"]
    assert [o.resumed for o in out] == [True, True, False, True, True, True]


def _records(path: Path) -> int:
    return len(path.read_bytes().splitlines()) - 1


def test_a_torn_last_line_is_dropped_and_cut_off(tmp_path):
    items, path = names(5), tmp_path / "j"
    job = SquareJob()
    journal, _ = _open(path, job, items)
    list(run_batch(job, items, jobs=1, journal=journal))  # one thread: lines in item order
    journal.close()
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1  # start of the last record
    for cut in range(last, len(data)):  # killed anywhere inside the last write
        path.write_bytes(data[:cut])
        journal, done = _open(path, job, items)
        assert sorted(done) == [0, 1, 2, 3]
        assert path.read_bytes() == data[:last]  # the torn bytes are gone
        journal.append(Outcome(4, "d/4.wav", 16))  # and a new line follows a whole one
        journal.close()
        journal, done = _open(path, job, items)
        journal.close()
        assert done[4]["value"] == 16


def test_a_damaged_line_ends_the_journal_there(tmp_path):
    items, path = names(5), tmp_path / "j"
    job = SquareJob()
    journal, _ = _open(path, job, items)
    list(run_batch(job, items, jobs=1, journal=journal))
    journal.close()
    lines = path.read_bytes().splitlines(keepends=True)
    damaged = lines[3].replace(b'"value":4', b'"value":5')  # record of item 2, checksum now wrong
    assert damaged != lines[3]
    path.write_bytes(b"".join([*lines[:3], damaged, *lines[4:]]))
    journal, done = _open(path, job, items)
    journal.close()
    assert sorted(done) == [0, 1]
    # a header torn while it was written: the journal starts afresh
    path.write_bytes(lines[0][:20])
    journal, done = _open(path, job, items)
    journal.close()
    assert done == {} and _records(path) == 0


def test_a_journal_of_another_run_is_refused_unless_restart(tmp_path):
    items, path = names(4), tmp_path / "out.csv.journal"
    job = SquareJob()
    journal, _ = _open(path, job, items)
    list(run_batch(job, items, journal=journal))
    journal.close()
    with pytest.raises(KwsosError, match="it was written for other files; rerun with --restart"):
        _open(path, job, names(5))
    with pytest.raises(KwsosError, match=r"other settings \(fail differ\)"):
        _open(path, SquareJob(fail=("d/1.wav",)), items)
    journal, done = _open(path, SquareJob(fail=("d/1.wav",)), items, restart=True)
    journal.close()
    assert done == {} and _records(path) == 0


def test_one_journal_is_written_by_one_run_at_a_time(tmp_path):
    items, path = names(2), tmp_path / "j"
    journal, _ = _open(path, SquareJob(), items)
    try:
        with pytest.raises(KwsosError, match="in use by another kwsos command"):
            _open(path, SquareJob(), items)
    finally:
        journal.close()
    journal, _ = _open(path, SquareJob(), items)  # released
    journal.close()


def test_concurrent_appends_stay_whole_lines(tmp_path):
    items, path = names(400), tmp_path / "j"
    journal, _ = _open(path, SquareJob(), items)

    def write(start: int) -> None:
        for k in range(start, 400, 4):
            journal.append(Outcome(k, items[k], {"x": "y" * (k % 50)}))

    threads = [threading.Thread(target=write, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    journal.close()
    journal, done = _open(path, SquareJob(), items)
    journal.close()
    assert sorted(done) == list(range(400))


# -------------------------------------------------------------------------------------- dask
@pytest.fixture
def restore_threads():
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_dask_pool_on_a_running_scheduler_gives_the_same_outcomes(restore_threads):
    distributed = pytest.importorskip("distributed")
    items = names(17)
    job = SquareJob(fail=("d/11.wav",))
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        with DaskPool(scheduler=cluster.scheduler_address) as pool:
            assert pool.n_threads == 2
            out = list(run_batch(job, items, unit_size=3, pool=pool))
    ref = list(run_batch(SquareJob(fail=("d/11.wav",)), items, unit_size=3))
    assert [(o.index, o.value, o.error) for o in out] == [(o.index, o.value, o.error) for o in ref]


def test_dask_pool_options_are_checked():
    with pytest.raises(KwsosError, match="'local' or a scheduler address"):
        DaskPool(scheduler="myhost:8786")
    with pytest.raises(KwsosError, match="cannot be combined"):
        DaskPool(scheduler="tcp://h:1", workers=2)
    with pytest.raises(KwsosError, match="cannot reach the Dask scheduler"):
        with DaskPool(scheduler="tcp://127.0.0.1:9", timeout_s=1):
            pass


def test_units_by_size_group_short_files_and_keep_long_ones_alone(tmp_path):
    sizes = [10, 10, 10, 50, 10, 10, 10, 10, 10, 100, 5]
    items = []
    for k, size in enumerate(sizes):
        items.append(tmp_path / f"{k}.wav")
        items[-1].write_bytes(b"x" * size)
    items.append(tmp_path / "missing.wav")  # cannot be sized: a unit of its own
    items.append(tmp_path / "0.wav")
    job = SquareJob()
    out = list(run_batch(job, [str(p) for p in items], unit_size=4, unit_bytes=40, jobs=1))
    assert [o.value for o in out[:11]] == [k * k for k in range(11)]
    assert not out[11].ok and out[12].value == 0
    assert [[Path(p).name for p in call] for call in job.calls] == [
        ["0.wav", "1.wav", "2.wav"],  # 30 bytes; the next would pass 40
        ["3.wav"],  # 50 bytes alone
        ["4.wav", "5.wav", "6.wav", "7.wav"],  # unit_size 4
        ["8.wav"],
        ["9.wav"],
        ["10.wav"],
        ["missing.wav"],  # sized as a full unit
        ["0.wav"],
    ]


def test_cluster_units_are_guided_large_first_and_single_files_at_the_end(tmp_path):
    from kwsos.batch import _units

    items = []
    for k in range(40):
        items.append(str(tmp_path / f"{k}.wav"))
        Path(items[-1]).write_bytes(b"x" * 100)
    todo = list(range(40))
    assert [len(u) for u in _units(items, todo, 64, 1000)] == [10, 10, 10, 10]
    units = _units(items, todo, 64, 1000, parallel=2)
    assert [i for u in units for i, _ in u] == todo  # every item once, in order
    # worked by hand: a unit holds at most min(1000, bytes left // (2 x 2)) bytes, and at
    # least one file: 4000 -> 10 files, 3000 -> 7, 2300 -> 5, 1800 -> 4, 1400 -> 3, ...
    assert [len(u) for u in units] == [10, 7, 5, 4, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    assert [len(u) for u in _units(items, todo, 6, 1000, parallel=2)][:3] == [6, 6, 6]


@dataclass(frozen=True)
class NoModelJob(SquareJob):
    def load(self) -> str:
        raise KwsosError("no keyword bank at /shared/bank (missing bank.json)")


def test_a_worker_that_cannot_load_the_model_stops_the_run(restore_threads):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        with DaskPool(scheduler=cluster.scheduler_address) as pool:
            with pytest.raises(WorkerSetupError, match="could not load the square model: no k"):
                list(run_batch(NoModelJob(), names(5), pool=pool))


# ------------------------------------------------------------------- local cluster start-up
def test_worker_environ_keeps_dask_blas_settings_and_sets_our_malloc(monkeypatch):
    pytest.importorskip("distributed")
    from kwsos.batch import _worker_environ

    for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"):
        monkeypatch.delenv(k, raising=False)
    env = _worker_environ()
    assert env["MALLOC_TRIM_THRESHOLD_"] == str(256 << 20)
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(32 << 20)
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "1"  # Dask's
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    assert _worker_environ()["MALLOC_TRIM_THRESHOLD_"] == "65536"  # the user's setting wins


def test_worker_preload_names_the_jobs_module_and_what_it_asks_for():
    from kwsos.batch import worker_preload
    from kwsos.tasks.kws import DetectJob
    from kwsos.tasks.openset import ClassifyJob

    mods = worker_preload(DetectJob)
    assert mods[:3] == ["kwsos._worker_preload", "kwsos.tasks.jobs", "kwsos.tasks.kws"]
    assert "scipy.fft" in mods and len(mods) == len(set(mods))
    assert worker_preload(ClassifyJob("m.osc")) == worker_preload(ClassifyJob)
    assert {"kwsos.tasks.openset", "torch"} <= set(worker_preload(ClassifyJob))
    assert worker_preload(SquareJob)[:2] == ["kwsos._worker_preload", __name__]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_the_fork_servers_preload_starts_no_thread():
    """Workers are forked from the server: a thread started by an import there (a BLAS pool,
    say) would be missing, its locks possibly held, in every worker."""
    pytest.importorskip("distributed")
    import os
    import subprocess
    import sys

    from kwsos.batch import _worker_environ, worker_preload
    from kwsos.tasks.anomaly import ScoreJob
    from kwsos.tasks.kws import DetectJob
    from kwsos.tasks.openset import ClassifyJob

    mods = {m for cls in (DetectJob, ClassifyJob, ScoreJob) for m in worker_preload(cls)}
    code = (
        f"import os\nfor m in {sorted(mods | {'kwsos.cli'})!r}:\n    __import__(m)\n"
        "print(len(os.listdir('/proc/self/task')))"
    )
    env = {**os.environ, **_worker_environ()}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "1", done.stderr


def _worker_facts() -> tuple[int, dict[str, str], list[str], bool]:
    import os
    import sys

    import dask

    return (
        os.getppid(),
        dict(os.environ),
        sorted(sys.modules),
        dask.config.get("distributed.worker.profile.enabled"),
    )


def test_local_cluster_workers_are_forked_warm_with_our_malloc_settings(
    monkeypatch, restore_threads
):
    pytest.importorskip("distributed")
    import multiprocessing
    import os

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this platform")
    for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"):
        monkeypatch.delenv(k, raising=False)
    with DaskPool(workers=1, dashboard=False) as pool:
        ppid, env, modules, profiling = pool.client.submit(_worker_facts, pure=False).result()
        stealing = "stealing" in pool._cluster.scheduler.extensions
        assert pool.dashboard_link is None
    assert not profiling and not stealing  # Dask's housekeeping that takes our workers' CPU
    assert ppid != os.getpid()  # forked by the server, not spawned by our nanny
    assert "kwsos._worker_preload" in modules and "numba.core.registry" in modules
    assert "kwsos.cli" not in modules  # nor was a main script re-run in the worker
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(32 << 20)
    assert env["MALLOC_TRIM_THRESHOLD_"] == str(256 << 20)
    # the nanny set them here too before it started the worker: put back
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ
    assert "MALLOC_MMAP_THRESHOLD_" not in os.environ
