"""kwsos.parallel.tune_malloc: the command line's glibc malloc thresholds (MB-sized arrays stay
in the heap instead of being mapped and unmapped, page-faulting, each time)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from kwsos.parallel import MALLOC_SETTINGS, tune_malloc

glibc = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt"
)

#: Allocate and free a 4 MiB array 40 times; print the minor page faults that took.
FAULTS = """
import resource, sys
import numpy as np
from kwsos.parallel import tune_malloc
tuned = tune_malloc() if sys.argv[1] == "tune" else None
np.ones(1 << 19).sum()  # the first one may fault in any case
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    np.ones(1 << 19).sum()  # 4 MiB of float64, freed at once
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k not in MALLOC_SETTINGS}
    out = subprocess.run(
        [sys.executable, "-c", FAULTS, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0], int(out[1])


@glibc
def test_tuned_malloc_reuses_mb_sized_arrays_instead_of_faulting_them_in_each_time():
    # Dask's nanny setting (any threshold set turns glibc's adaptive threshold off): every
    # 4 MiB array is a fresh mapping whose pages fault in again (measured: ~20000 faults; some
    # kernels back part of it with huge pages)
    _, dask_like = _faults("plain", MALLOC_TRIM_THRESHOLD_="65536")
    tuned, ours = _faults("tune")
    assert tuned == "True"
    assert dask_like > 4000
    assert ours < 400  # the heap's pages are reused (measured: 0)


def test_a_users_malloc_setting_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    assert tune_malloc() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("KWSOS_MALLOC_TUNING", "0")
    assert tune_malloc() is False
