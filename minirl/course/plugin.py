"""The graders' pytest plugin: points, a per-test timeout, one line for a stub, and a JSON report.

:mod:`minirl.course.grading` copies this file, as ``conftest.py``, into the temporary folder it runs the
tests from, so the plugin that grades is always the grader's own copy -- never the student tree's -- and
needs nothing but pytest (no pytest-timeout: a SIGALRM timer is all a single-threaded test needs, and a
dependency less is one thing less to install on a grading machine).

* ``@pytest.mark.points(n)``: the test is worth n points (default 1).
* ``@pytest.mark.timeout_s(t)``: its time limit (default ``MINIRL_COURSE_TIMEOUT``); past it the test
  fails with ``timeout: ...``. The timer interrupts Python code; a single C call that never returns is
  caught by the grader's limit on the whole run instead.
* A ``NotImplementedError("<assignment> · <function>")`` -- what a stub raises -- is reported as the one
  line ``not implemented: <assignment> · <function>`` instead of a traceback.
* At the end, every test's outcome, points, kind (``public``/``hidden``: its folder), whether it failed by
  an assertion, and a short message are written as JSON to ``MINIRL_COURSE_REPORT``; collection errors too.
"""

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

_REPORT = os.environ.get("MINIRL_COURSE_REPORT")
_TIMEOUT = float(os.environ.get("MINIRL_COURSE_TIMEOUT", "30"))
_TREE = os.environ.get("MINIRL_COURSE_TREE")
_STUB = re.compile(r"^[\w-]+ · [\w.<>#]+$")
_results: dict = {}
_problems: list = []


class GraderTimeout(Exception):
    """A test ran past its time limit."""


def pytest_configure(config):
    config.addinivalue_line("markers", "points(n): the points this test is worth (default 1)")
    config.addinivalue_line("markers", "timeout_s(t): this test's time limit in seconds")


def pytest_sessionstart(session):
    if _TREE:  # the code under test must be the tree's, not an installed copy
        import minirl

        where = os.path.realpath(minirl.__file__)
        if not where.startswith(os.path.realpath(_TREE) + os.sep):
            _problems.append(f"minirl was imported from {where}, not from the tree {_TREE}")


def _short(text: str, lines: int = 25, chars: int = 2500) -> str:
    kept = text.strip().splitlines()[-lines:]
    return "\n".join(kept)[-chars:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("timeout_s")
    limit = float(marker.args[0]) if marker else _TIMEOUT
    state = {"running": True}

    def on_alarm(signum, frame):
        if state["running"]:
            raise GraderTimeout(f"took longer than {limit:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        state["running"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("points")
    entry = _results.setdefault(item.nodeid, {
        "name": item.nodeid, "kind": Path(str(item.fspath)).parent.name, "points": marker.args[0] if marker else 1,
        "outcome": "passed", "phase": None, "assertion": False, "not_implemented": None, "message": "",
        "seconds": 0.0})
    entry["seconds"] += call.duration if call else 0.0
    if report.skipped and entry["outcome"] == "passed":
        entry.update(outcome="skipped", phase=report.when, message=_short(str(report.longrepr)))
    if not report.failed or entry["outcome"] in ("failed", "error"):
        return
    excinfo = call.excinfo
    entry["phase"] = report.when
    entry["outcome"] = "failed" if report.when == "call" else "error"
    if excinfo is not None and excinfo.errisinstance(NotImplementedError) and _STUB.match(str(excinfo.value)):
        entry["not_implemented"] = str(excinfo.value)
        entry["message"] = f"not implemented: {excinfo.value}"
        report.longrepr = entry["message"]
    elif excinfo is not None and excinfo.errisinstance(GraderTimeout):
        entry["message"] = f"timeout: {excinfo.value}"
        report.longrepr = entry["message"]
    else:
        entry["assertion"] = bool(excinfo is not None and excinfo.errisinstance(AssertionError))
        where = ""
        if excinfo is not None:
            tb = [e for e in excinfo.traceback if Path(str(e.path)).name == Path(str(item.fspath)).name]
            if tb:
                where = f" ({Path(str(tb[-1].path)).name}:{tb[-1].lineno + 1})"
            entry["message"] = _short(excinfo.exconly()) + where
        else:
            entry["message"] = _short(str(report.longrepr))


def pytest_collectreport(report):
    if report.failed:
        _problems.append(f"{report.nodeid or 'collection'}: {_short(str(report.longrepr), 8, 800)}")


def pytest_sessionfinish(session, exitstatus):
    if _REPORT:
        Path(_REPORT).write_text(json.dumps({"tests": list(_results.values()), "problems": _problems,
                                             "finished": time.time()}))
