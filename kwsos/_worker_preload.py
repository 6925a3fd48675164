"""Imported once by the fork server that starts a local Dask cluster's workers
(:func:`kwsos.batch.start_worker_server`): what every worker needs, loaded before the workers
are forked, so that none of them pays for it.

Nothing here may start a thread (the server must stay single-threaded to be safe to fork):
the server's environment keeps BLAS and OpenMP on one thread, and a test checks the thread
count after this import.
"""

import distributed  # noqa: F401  (the worker itself)
from numba.core.registry import cpu_target

import kwsos.batch  # noqa: F401  (the task function)

# numba's code generator, set up on the first call of any compiled function (~0.3 s)
cpu_target.target_context.refresh()
