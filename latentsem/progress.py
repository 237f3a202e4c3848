"""Progress reporting for long searches: ``progress=False | True | callable``.

The library is silent by default (STYLE.md convention 12). An estimator that
takes ``progress`` turns it into a reporter once, with :func:`make_progress`,
and calls ``report(stage, done, total)`` as it goes; LGES reports the start of
Phase 1, each k of Phase 1 and each Phase-2 round.

* ``False`` / ``None``: nothing is written.
* ``True``: a bar on stderr, drawn with tqdm when it is installed (imported
  only then, as pooch does) and otherwise one plain line per update.
* a callable: called as ``callable(stage, done, total)``, for notebooks, GUIs
  or tests.

A new ``stage`` starts a new bar; a bar closes itself when ``done`` reaches
``total``, and :meth:`StderrProgress.close` closes the last one.
"""

from __future__ import annotations

import sys

from .exceptions import LatentsemError


def make_progress(progress, stream=None):
    """The reporter ``report(stage: str, done: int, total: int)`` for a ``progress`` setting.

    Parameters
    ----------
    progress : bool, None or callable
        ``False``/``None`` -> a no-op; ``True`` -> :class:`StderrProgress`;
        a callable -> returned unchanged.
    stream : file-like, optional
        Where ``True`` draws; default ``sys.stderr`` (looked up at call time).

    Returns
    -------
    callable
        Takes ``(stage, done, total)``; the return value is ignored.

    Raises
    ------
    LatentsemError
        For any other value.
    """
    if progress is None or progress is False:
        return _no_progress
    if progress is True:
        return StderrProgress(stream)
    if callable(progress):
        return progress
    raise LatentsemError(f"The 'progress' parameter must be a bool or a callable taking (stage, done, total). "
                         f"Got {progress!r} instead.")


def close_progress(report):
    """Close a reporter from :func:`make_progress` that draws (a callable without ``close`` is left alone)."""
    close = getattr(report, "close", None)
    if close is not None:
        close()


def _no_progress(stage, done, total):
    """The reporter of ``progress=False``: does nothing."""


class StderrProgress:
    """A progress bar per stage on stderr: tqdm when installed, plain lines otherwise.

    Parameters
    ----------
    stream : file-like, optional
        Output stream; default ``sys.stderr``.
    """

    def __init__(self, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self._tqdm = _tqdm_class()
        self._bar = None
        self._stage = None

    @property
    def uses_tqdm(self):
        """True when the bar is drawn by tqdm, False for the plain line writer."""
        return self._tqdm is not None

    def __call__(self, stage, done, total):
        total = total if total and total > 0 else None  # 0 or None: length unknown
        if stage != self._stage:
            self.close()
            self._stage = stage
            if self._tqdm is not None:
                self._bar = self._tqdm(total=total, desc=stage, file=self.stream, leave=True,
                                       dynamic_ncols=True, mininterval=0)
        if self._bar is None:
            self.stream.write(f"{stage}: {done}/{total if total is not None else '?'}\n")
            self.stream.flush()
            return
        if total != self._bar.total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()
        if total is not None and done >= total:
            self.close()

    def close(self):
        """Close the current stage's bar (the next report opens a new one)."""
        if self._bar is not None:
            self._bar.close()
        self._bar = None
        self._stage = None


def _tqdm_class():
    """``tqdm.tqdm``, or None when tqdm is not installed (it is optional)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm
