"""Run BLAS/LAPACK on one thread around the small-matrix loops of the estimators.

Every product in the score engine and in NOTEARS is at most ~100 x 100, where
extra BLAS threads only cost: measured on a busy 2-core machine, a d = 10
NOTEARS fit took 44 s with OpenBLAS's 2 threads against 1.3 s with one, and a
172 x 172 solve 34-110 ms against 0.3 ms.
"""

from threadpoolctl import threadpool_limits


def single_threaded_blas():
    """A context manager limiting BLAS to one thread (threadpoolctl)."""
    return threadpool_limits(limits=1, user_api="blas")
