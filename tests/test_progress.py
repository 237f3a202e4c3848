"""Tests of latentsem.progress: the reporter behind ``progress=False | True | callable``."""

import io
import sys

import pytest

from latentsem.exceptions import LatentsemError
from latentsem.progress import StderrProgress, make_progress


@pytest.mark.parametrize("setting", [False, None])
def test_off_writes_nothing(setting, capsys):
    report = make_progress(setting)
    assert report("Phase 1", 1, 3) is None
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_callable_is_used_as_is():
    calls = []

    def record(stage, done, total):
        calls.append((stage, done, total))

    report = make_progress(record)
    assert report is record
    report("Phase 2", 2, 5)
    assert calls == [("Phase 2", 2, 5)]


@pytest.mark.parametrize("setting", ["yes", 1.5, 0])
def test_other_values_are_refused(setting):
    message = "The 'progress' parameter must be a bool or a callable taking (stage, done, total). "
    with pytest.raises(LatentsemError, match=r"^The 'progress' parameter must be a bool") as info:
        make_progress(setting)
    assert str(info.value) == message + f"Got {setting!r} instead."


def test_true_draws_a_tqdm_bar_on_the_stream():
    stream = io.StringIO()
    report = make_progress(True, stream=stream)
    assert isinstance(report, StderrProgress) and report.uses_tqdm
    report("Phase 1", 0, 4)
    report("Phase 1", 3, 4)
    text = stream.getvalue()
    assert "Phase 1" in text and "3/4" in text
    assert report._bar is not None  # not finished: the bar stays open
    report("Phase 1", 4, 4)
    assert "4/4" in stream.getvalue()
    assert report._bar is None  # done == total closes the bar


def test_true_defaults_to_stderr(capsys):
    report = make_progress(True)
    report("Phase 1", 1, 2)
    report.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Phase 1" in captured.err and "1/2" in captured.err


def test_a_new_stage_closes_the_previous_bar():
    stream = io.StringIO()
    report = make_progress(True, stream=stream)
    report("Phase 1", 1, 3)
    first = report._bar
    report("Phase 2", 1, 6)
    assert first.disable  # tqdm disables a bar when it is closed
    assert report._bar is not first and report._bar.desc.startswith("Phase 2")
    assert report._bar.total == 6
    report.close()
    text = stream.getvalue()
    assert text.index("Phase 1") < text.index("Phase 2") and "1/6" in text


def test_plain_lines_when_tqdm_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` now raises ImportError
    stream = io.StringIO()
    report = make_progress(True, stream=stream)
    assert not report.uses_tqdm
    report("Phase 1", 0, 3)
    report("Phase 1", 2, 3)
    report("Phase 2", 1, 0)  # unknown length
    assert stream.getvalue() == "Phase 1: 0/3\nPhase 1: 2/3\nPhase 2: 1/?\n"


def test_tqdm_is_imported_lazily(monkeypatch):
    monkeypatch.delitem(sys.modules, "tqdm", raising=False)
    make_progress(False)("Phase 1", 1, 2)
    make_progress(lambda *args: None)("Phase 1", 1, 2)
    assert "tqdm" not in sys.modules
