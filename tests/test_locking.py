"""The bank lock (:func:`kwsos.io.file_lock`) directly, and end to end: concurrent
``kwsos enroll`` into one bank keep every keyword, and ``kill -9`` at any moment leaves the old
or the new bank."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_shots, plain_config
from typer.testing import CliRunner

from kwsos.errors import KwsosError
from kwsos.io import DEFAULT_LOCK_TIMEOUT_S, LOCK_TIMEOUT_ENV, file_lock, lock_path, lock_timeout_s

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")


# ---------------------------------------------------------------------- file_lock
def test_a_second_acquirer_times_out_while_the_first_holds_it(tmp_path):
    lock = tmp_path / ".bank.lock"
    with file_lock(lock, 1.0):
        start = time.monotonic()
        with pytest.raises(KwsosError, match="bank b is in use by another kwsos command"):
            with file_lock(lock, 0.3, what="bank b"):
                pytest.fail("acquired a held lock")
        assert 0.25 <= time.monotonic() - start < 5
        with pytest.raises(KwsosError, match="in use"):  # timeout 0: one try
            with file_lock(lock, 0):
                pass


def test_released_on_exit_and_on_exception_and_the_file_removed(tmp_path):
    lock = tmp_path / ".bank.lock"
    with file_lock(lock, 0) as held:
        assert held == lock and lock.exists()
    assert not lock.exists()
    with file_lock(lock, 0):  # free again at once
        pass
    with pytest.raises(RuntimeError, match="boom"):
        with file_lock(lock, 0):
            raise RuntimeError("boom")
    assert not lock.exists()
    with file_lock(lock, 0):
        pass


def test_a_waiter_gets_the_lock_when_it_is_released(tmp_path):
    lock = tmp_path / ".bank.lock"
    held = threading.Event()

    def hold():
        with file_lock(lock, 0):
            held.set()
            time.sleep(0.4)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    start = time.monotonic()
    with file_lock(lock, 10):
        waited = time.monotonic() - start
    t.join()
    assert 0.2 < waited < 5


def test_mutual_exclusion_under_contention(tmp_path):
    """Read-modify-write of a counter by 4 threads x 25 rounds under the lock loses no
    increment (the lock file is removed and re-created all the time)."""
    lock, counter = tmp_path / ".c.lock", tmp_path / "c.txt"
    counter.write_text("0")

    def work():
        for _ in range(25):
            with file_lock(lock, 30):
                n = int(counter.read_text())
                time.sleep(0.0005)
                counter.write_text(str(n + 1))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.read_text() == "100"
    assert not lock.exists()


def test_held_by_another_process_and_a_stale_file_is_reused(tmp_path):
    lock = tmp_path / ".bank.lock"
    code = (
        "import sys, time\nfrom kwsos.io import file_lock\n"
        f"with file_lock({str(lock)!r}, 0):\n    print('held', flush=True)\n    time.sleep(30)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(KwsosError, match="in use"):
            with file_lock(lock, 0.2):
                pass
    finally:
        p.kill()  # SIGKILL: the kernel releases the lock; the file stays behind
        p.wait()
    assert lock.exists()
    with file_lock(lock, 2):  # the leftover file is reused, then removed
        pass
    assert not lock.exists()


def test_lock_path_and_timeout(monkeypatch, tmp_path):
    assert lock_path(tmp_path / "my_bank") == tmp_path / ".my_bank.lock"
    assert lock_path(Path("my_bank")) == Path.cwd() / ".my_bank.lock"
    assert lock_path(tmp_path / "x" / ".." / "my_bank") == tmp_path / ".my_bank.lock"
    monkeypatch.delenv(LOCK_TIMEOUT_ENV, raising=False)
    assert lock_timeout_s() == DEFAULT_LOCK_TIMEOUT_S
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "2.5")
    assert lock_timeout_s() == 2.5
    for bad in ("-1", "nan", "inf", "soon"):
        monkeypatch.setenv(LOCK_TIMEOUT_ENV, bad)
        with pytest.raises(KwsosError, match=LOCK_TIMEOUT_ENV):
            lock_timeout_s()


# ---------------------------------------------------------------------- the CLI
def _digest(folder: Path) -> str:
    """Names and contents under ``folder``; a WAV file by its samples (libsndfile stamps the
    time of writing into the PEAK chunk of float WAVs, so two saves of one bank differ there)."""
    import soundfile as sf

    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode() + b"\0")
        if p.is_file() and p.suffix == ".wav":
            x, sr = sf.read(str(p), dtype="float32")
            h.update(f"{sr} {x.shape}".encode() + x.tobytes())
        elif p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("lock_shots")
    rng = np.random.default_rng(5)
    return {name: make_shots(root / name, name, rng) for name in ("alpha", "beta")}


def test_a_bank_in_use_is_one_line_and_readers_do_not_wait(shots, audio_set, tmp_path):
    from kwsos.cli import app
    from kwsos.tasks.kws import KeywordSpotter

    runner = CliRunner()
    bank = tmp_path / "bank"
    spotter = KeywordSpotter(plain_config())
    spotter.enroll("alpha", shots["alpha"])
    spotter.save(bank)
    before = _digest(tmp_path)
    with file_lock(lock_path(bank), 0):
        env = {LOCK_TIMEOUT_ENV: "0.2"}
        for args in (
            ["enroll", "beta", *shots["beta"], "--bank", bank],
            ["keywords", "--bank", bank, "--remove", "alpha"],
            ["tune", audio_set["recording"], "-r", audio_set["reference"], "--bank", bank],
        ):
            r = runner.invoke(app, [str(a) for a in args], env=env)
            assert r.exit_code == 2, r.output
            lines = [line for line in r.stderr.splitlines() if line.strip()]
            assert lines == [f"error: bank {bank} is in use by another kwsos command (waited "
                             f"0.2 s; set {LOCK_TIMEOUT_ENV} to wait longer)"]  # fmt: skip
        r = runner.invoke(app, ["keywords", "--bank", str(bank)], env=env)
        assert r.exit_code == 0 and "alpha" in r.stdout
        r = runner.invoke(app, ["detect", str(audio_set["recording"]), "--bank", str(bank)])
        assert r.exit_code == 0, r.output
    assert _digest(tmp_path) == before  # the lock file is gone again


def _enroll_cmd(keyword: str, shot_paths: list[Path], bank: Path) -> list[str]:
    return [sys.executable, "-m", "kwsos.cli", "enroll", keyword, *map(str, shot_paths),
            "--bank", str(bank)]  # fmt: skip


def _env() -> dict[str, str]:
    # one numba / BLAS thread each: two processes on a small machine
    return {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", LOCK_TIMEOUT_ENV: "120"}


@pytest.mark.parametrize("start", ["new bank", "existing bank"])
def test_two_concurrent_enrolls_keep_both_keywords(shots, tmp_path, start):
    from kwsos.tasks.kws import KeywordSpotter

    for round_ in range(3):
        bank = tmp_path / f"bank{round_}"
        if start == "existing bank":
            KeywordSpotter(plain_config()).save(bank)
        procs = [
            subprocess.Popen(
                _enroll_cmd(kw, shots[kw], bank),
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for kw in ("alpha", "beta")
        ]
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            assert "enrolled" in err
        assert sorted(KeywordSpotter.load(bank).keywords) == ["alpha", "beta"], round_
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            f"bank{i}" for i in range(round_ + 1)
        ]  # no lock file, no temporary copy


def test_kill_9_leaves_the_old_or_the_new_bank(shots, tmp_path):
    """``kwsos enroll`` killed at several moments of its run: the bank afterwards loads and is
    byte for byte the one before or the one after, and the next enroll is not blocked."""
    from kwsos.tasks.kws import KeywordSpotter

    pristine = tmp_path / "pristine"
    spotter = KeywordSpotter(plain_config())
    spotter.enroll("alpha", shots["alpha"])
    spotter.save(pristine)
    work = tmp_path / "work"
    bank = work / "bank"
    shutil.copytree(pristine, bank)
    old = _digest(bank)
    start = time.monotonic()
    subprocess.run(_enroll_cmd("beta", shots["beta"], bank), env=_env(), check=True,
                   capture_output=True)  # fmt: skip
    duration = time.monotonic() - start
    new = _digest(bank)
    assert new != old
    seen = set()
    for fraction in (0.2, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05):
        shutil.rmtree(work)
        shutil.copytree(pristine, bank)
        p = subprocess.Popen(
            _enroll_cmd("beta", shots["beta"], bank),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(fraction * duration)
        p.send_signal(signal.SIGKILL)
        p.wait()
        state = _digest(bank)
        assert state in (old, new), f"killed at {fraction:.2f} x {duration:.2f} s: a mixed bank"
        seen.add("new" if state == new else "old")
        assert sorted(KeywordSpotter.load(bank).keywords) in (["alpha"], ["alpha", "beta"])
    assert "old" in seen  # the early kills at least
    # the lock of a killed command does not block the next one
    shutil.rmtree(work)
    shutil.copytree(pristine, bank)
    r = subprocess.run(_enroll_cmd("beta", shots["beta"], bank), env={**_env(),
                       LOCK_TIMEOUT_ENV: "5"}, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _digest(bank) == new
