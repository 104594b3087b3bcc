"""Grading: run an assignment's tests against a tree in a fresh interpreter, and turn the outcome into
points, one line per test, and a Gradescope ``results.json``.

Design decisions:

* **A subprocess per run.** The student's code is imported from the tree (``PYTHONPATH=<tree>``; the
  plugin checks that ``minirl`` really came from there), never into the grader's own process, so a
  crash, an infinite loop or a monkey-patch cannot touch the grader; the whole run also has a time
  limit (the per-test limits, summed, plus two minutes for imports).
* **The tests run from a temporary folder** holding copies of the public and hidden tests and the
  grader's plugin (:mod:`minirl.course.plugin`) as its ``conftest.py``, with its own ``pytest.ini``:
  the tree's configuration files, conftests and installed pytest plugins
  (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``) play no part.
* **Points are all or nothing per test**, from ``@pytest.mark.points``. Public tests are ``visible``
  on Gradescope, hidden ones ``after_published``; a hidden test's message is kept out of the student's
  view until then (Gradescope's own rule for that visibility).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TestResult", "RunResult", "run_tests", "results_json", "format_grade"]

_PLUGIN = Path(__file__).with_name("plugin.py")
_INI = "[pytest]\naddopts = -p no:cacheprovider --import-mode=importlib\nconsider_namespace_packages = false\n"
VISIBILITY = {"public": "visible", "hidden": "after_published"}
"""Gradescope visibility of each kind of test."""


@dataclass
class TestResult:
    """One test's outcome: ``outcome`` is passed, failed (in the test), error (in a fixture), skipped."""

    name: str
    kind: str
    points: float
    outcome: str
    message: str = ""
    assertion: bool = False
    not_implemented: str | None = None
    phase: str | None = None
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return self.points if self.outcome == "passed" else 0.0


@dataclass
class RunResult:
    """The tests of one run and what went wrong around them (collection errors, a crash, the time limit)."""

    tests: list[TestResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.points for t in self.tests)


def _count_tests(files: list[Path]) -> int:
    return sum(f.read_text().count("\ndef test_") + f.read_text().count("@pytest.mark.parametrize") * 3
               for f in files)


def run_tests(tree: Path, tests: dict[str, list[Path]], timeout_s: float, check_origin: bool = True) -> RunResult:
    """Run the test files ``tests`` (kind -> files, kinds ``public`` / ``hidden``) against ``tree``.

    Returns every test's result, plus the problems that are not a test's fault: a collection error, a
    crashed interpreter, the whole run's time limit.
    """
    start = time.perf_counter()
    tree = Path(tree).resolve()
    files = [f for fs in tests.values() for f in fs]
    with tempfile.TemporaryDirectory(prefix="minirl-course-") as tmp:
        run = Path(tmp) / "run"
        for kind, fs in tests.items():
            (run / kind).mkdir(parents=True, exist_ok=True)
            for f in fs:
                shutil.copy2(f, run / kind / f.name)
        shutil.copy2(_PLUGIN, run / "conftest.py")
        (run / "pytest.ini").write_text(_INI)
        report = Path(tmp) / "report.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MINIRL_COURSE_"))}
        env.update(PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
                   MINIRL_COURSE_REPORT=str(report), MINIRL_COURSE_TIMEOUT=str(timeout_s),
                   OMP_NUM_THREADS="1", MINIRL_FAST="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
        if check_origin:
            env["MINIRL_COURSE_TREE"] = str(tree)
        limit = timeout_s * max(1, _count_tests(files)) + 120
        command = [sys.executable, "-m", "pytest", "-q", "-c", str(run / "pytest.ini"), "--rootdir", str(run),
                   str(run)]
        try:
            done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=limit)
            output = done.stdout + done.stderr
        except subprocess.TimeoutExpired:
            return RunResult(problems=[f"the run exceeded its limit of {limit:.0f} s and was stopped"],
                             seconds=time.perf_counter() - start)
        if not report.is_file():
            tail = "\n".join(output.strip().splitlines()[-15:])
            return RunResult(problems=[f"pytest ended without a report (status {done.returncode}):\n{tail}"],
                             seconds=time.perf_counter() - start)
        raw = json.loads(report.read_text())
    tests_out = [TestResult(name=t["name"], kind=t["kind"], points=float(t["points"]), outcome=t["outcome"],
                            message=t["message"], assertion=t["assertion"], not_implemented=t["not_implemented"],
                            phase=t["phase"], seconds=t["seconds"]) for t in raw["tests"]]
    order = {kind: i for i, kind in enumerate(tests)}  # public before hidden, as asked
    tests_out.sort(key=lambda t: order.get(t.kind, len(order)))
    return RunResult(tests=tests_out, problems=list(raw["problems"]), seconds=time.perf_counter() - start)


def results_json(assignment: str, result: RunResult, hidden_available: bool) -> dict:
    """Gradescope's results schema: score, and per test name, score, max_score, output, visibility."""
    tests = [{"name": f"{assignment} {t.name}", "score": t.score, "max_score": t.points,
              "status": "passed" if t.outcome == "passed" else "failed",
              "output": t.message if t.outcome != "passed" else "", "visibility": VISIBILITY.get(t.kind, "visible")}
             for t in result.tests]
    out = {"score": result.score, "max_score": result.max_score, "tests": tests,
           "execution_time": round(result.seconds, 1), "visibility": "visible",
           "output": "" if hidden_available else "Public tests only: the hidden tests run when your instructor grades.",
           "minirl_course": {"assignment": assignment, "problems": result.problems}}
    if result.problems:
        out["output"] = (out["output"] + "\n" + "\n".join(result.problems)).strip()
    return out


def format_grade(assignment: str, title: str, result: RunResult, hidden_available: bool) -> str:
    """The grade as text: one line per test, then ``<id>: x/y points``."""
    lines = [f"{assignment} · {title}"]
    width = max((len(t.name) for t in result.tests), default=0)
    for t in result.tests:
        score = f"{t.score:g}/{t.points:g}"
        note = "" if t.outcome == "passed" else "  " + (t.message.splitlines()[0] if t.message else t.outcome)
        if t.outcome == "passed":
            note = "  ok"
        lines.append(f"  {t.name:<{width}}  {score:>5}{note}")
    for p in result.problems:
        lines.append(f"  problem: {p}")
    if not hidden_available:
        lines.append("  (hidden tests: not in this tree; your instructor runs them)")
    lines.append(f"{assignment}: {result.score:g}/{result.max_score:g} points")
    return "\n".join(lines)
