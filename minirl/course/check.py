"""``minirl course check``: the proof that the course is sound, run in CI.

(a) **Reference**: the repository itself passes every public and hidden test of every assignment, and
    each assignment's tests add up to its points in the manifest.
(b) **Student trees**: in each assignment's student tree (built and verified as ``build`` does), every one
    of its own tests *fails* -- in the test body, with the not-implemented message of one of its blocks;
    an error in a fixture or at collection is a broken grader -- and every other assignment's public tests
    still pass (the assignment's stubs break nothing they should not). With the reference code written
    back into the student regions, the same tree passes its fingerprints and scores full points.
(c) **Mutants**: at least two per assignment, each failing at least one graded test by an assertion.
(d) **Static rules**: every ``# BEGIN SOLUTION`` block in the packages belongs to an assignment; each
    assignment has public and hidden tests and questions with answers; and no grader computes an expected
    value with the code it grades -- outside the ``test_*`` functions (in oracles, fixtures, module-level
    code) a grader file may not name a graded function or a function of the same module that calls one.
    Inside a test the graded function is called for the *actual* value only; that is the graders'
    convention, and (c) checks it works.

Runs go through :func:`minirl.course.grading.run_tests`, a fresh interpreter each, ``jobs`` at a time.
"""

from __future__ import annotations

import ast
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from minirl.course.blocks import STUDENT_BEGIN, Block, student_regions
from minirl.course.grading import RunResult, run_tests
from minirl.course.manifest import Assignment, Course
from minirl.course.mutants import read_mutant
from minirl.course.tree import compare_fingerprints, read_build, source_files, verify_tree, write_tree

__all__ = ["CheckReport", "check_course", "paste_reference", "static_problems"]

PACKAGES = ("minirl/", "llmtrack/")


@dataclass
class CheckReport:
    """Per assignment: lines of what held, problems, and the seconds its runs took."""

    lines: dict[str, list[str]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    course_problems: list[str] = field(default_factory=list)
    total_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.course_problems and not any(self.problems.values())


def _tests(course: Course, a: Assignment, kinds=("public", "hidden")) -> dict[str, list[Path]]:
    out = {}
    if "public" in kinds:
        out["public"] = sorted(course.public_dir(a).glob("test_*.py"))
    if "hidden" in kinds:
        out["hidden"] = sorted(course.hidden_dir(a).glob("test_*.py"))
    return out


def _graded_names(course: Course, a: Assignment) -> set[str]:
    """The functions holding a's blocks, and the functions of the same modules that call them (transitively)."""
    names: set[str] = set()
    for block in course.locate(a):
        module = ast.parse((course.root / block.file).read_text())
        calls: dict[str, set[str]] = {}
        for node in ast.walk(module):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                calls[node.name] = {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node)
                                    if isinstance(n, (ast.Name, ast.Attribute))}
        graded = {block.qualname.split(".")[-1]}
        grew = True
        while grew:
            more = {f for f, used in calls.items() if used & graded and f not in graded and not f.startswith("__")}
            grew = bool(more)
            graded |= more
        names |= graded
    return names


def oracle_problems(course: Course, a: Assignment) -> list[str]:
    """Grader code outside test functions that names a graded function (see the module docstring)."""
    graded = _graded_names(course, a)
    problems = []
    for files in _tests(course, a).values():
        for path in files:
            module = ast.parse(path.read_text())
            inside_tests: set[int] = set()
            for node in module.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                    inside_tests.update(id(n) for n in ast.walk(node))
            for node in ast.walk(module):
                if id(node) in inside_tests:
                    continue
                name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
                if name in graded:
                    problems.append(f"{path.relative_to(course.root)}:{node.lineno}: '{name}' is graded by {a.id}; "
                                    "an oracle, fixture or module-level line may not use it")
    return problems


def static_problems(course: Course) -> tuple[list[str], dict[str, list[str]]]:
    """(d): course-wide problems, and per-assignment ones."""
    course_problems = []
    owned = {b.name for a in course.assignments for b in course.locate(a)}
    for block in course.all_source_blocks():
        if block.name not in owned:
            course_problems.append(f"{block.file}:{block.begin + 1}: block {block.name} belongs to no assignment "
                                   "(add it to one in course/manifest.toml, or remove its markers)")
    per: dict[str, list[str]] = {}
    for a in course.assignments:
        problems = []
        tests = _tests(course, a)
        if not tests["public"]:
            problems.append(f"no public tests in {course.public_dir(a).relative_to(course.root)}")
        if not tests["hidden"]:
            problems.append(f"no hidden tests in {course.hidden_dir(a).relative_to(course.root)}")
        mutants = course.mutants(a)
        if len(mutants) < 2:
            problems.append(f"{len(mutants)} mutant(s) in course/mutants/{a.id}; at least 2 are needed")
        names = {b.name for b in course.locate(a)}
        for path in mutants:
            try:
                m = read_mutant(path)
            except ValueError as err:
                problems.append(str(err))
                continue
            for block in m.blocks:
                if block not in names:
                    problems.append(f"mutant {a.id}/{path.name}: {block} is not a block of {a.id}")
        questions = course.questions(a)
        if not questions.is_file():
            problems.append(f"no written questions ({questions.relative_to(course.root)})")
        elif "<!-- BEGIN ANSWER -->" not in questions.read_text():
            problems.append(f"{questions.relative_to(course.root)}: no answers for the instructor")
        problems.extend(oracle_problems(course, a))
        per[a.id] = problems
    return course_problems, per


def _reference(course: Course, a: Assignment) -> tuple[list[str], list[str], RunResult]:
    result = run_tests(course.root, _tests(course, a), a.timeout_s)
    lines, problems = [], list(result.problems)
    failed = [t for t in result.tests if t.outcome != "passed"]
    problems += [f"reference fails {t.name}: {t.message.splitlines()[0] if t.message else t.outcome}" for t in failed]
    if result.max_score != a.points:
        problems.append(f"the tests are worth {result.max_score:g} points; the manifest says {a.points}")
    n_public = sum(t.kind == "public" for t in result.tests)
    lines.append(f"(a) reference passes {len(result.tests) - len(failed)}/{len(result.tests)} tests "
                 f"({n_public} public, {len(result.tests) - n_public} hidden; {result.max_score:g} points) "
                 f"in {result.seconds:.1f} s")
    return lines, problems, result


def _student(course: Course, a: Assignment, scratch: Path) -> tuple[list[str], list[str], RunResult]:
    tree = scratch / f"student-{a.id}"
    built = write_tree(course, a, tree)
    problems = verify_tree(course, built)
    problems += [f"fingerprint of the fresh tree: {p}" for p in compare_fingerprints(tree, read_build(tree)["fingerprints"])]
    tests = _tests(course, a)
    for other in course.assignments:
        if other.id != a.id:
            tests[f"other-{other.id}"] = sorted(course.public_dir(other).glob("test_*.py"))
    result = run_tests(tree, tests, max(b.timeout_s for b in course.assignments))
    problems += result.problems
    own_names = {f"{a.id} · {b.label}" for b in course.locate(a)}
    own = [t for t in result.tests if t.kind in ("public", "hidden")]
    others = [t for t in result.tests if t.kind.startswith("other-")]
    for t in own:
        if t.outcome != "failed" or t.phase != "call" or t.not_implemented not in own_names:
            got = t.message.splitlines()[0] if t.message else t.outcome
            problems.append(f"student tree: {t.name} should fail with 'not implemented: {a.id} · ...' in the test, "
                            f"got {t.outcome} ({got})")
    for t in others:
        if t.outcome != "passed":
            problems.append(f"student tree: another assignment's test {t.name} fails: "
                            f"{t.message.splitlines()[0] if t.message else t.outcome}")
    lines = [f"(b) student tree: {len(built.stubbed)} stubs, verified; {sum(t.not_implemented in own_names for t in own)}"
             f"/{len(own)} own tests fail as not implemented; {sum(t.outcome == 'passed' for t in others)}"
             f"/{len(others)} other public tests pass ({result.seconds:.1f} s)"]
    # ... and a student who writes the reference code into the regions gets full points, edits accepted
    paste_reference(course, a, tree)
    problems += [f"reference pasted back: {p}" for p in compare_fingerprints(tree, read_build(tree)["fingerprints"])]
    solved = run_tests(tree, _tests(course, a), a.timeout_s)
    problems += solved.problems
    if solved.score != solved.max_score or not solved.tests:
        failed = [t.name for t in solved.tests if t.outcome != "passed"]
        problems.append(f"reference pasted back into the student tree: {solved.score:g}/{solved.max_score:g} points "
                        f"(failing: {', '.join(failed[:3])})")
    lines.append(f"(b) reference pasted back into the student regions: {solved.score:g}/{solved.max_score:g} points "
                 f"({solved.seconds:.1f} s)")
    result.seconds += solved.seconds
    shutil.rmtree(tree, ignore_errors=True)
    return lines, problems, result


def paste_reference(course: Course, a: Assignment, tree: Path) -> None:
    """Write each block's reference code between its student-region markers in a built tree, as a
    student who solved the assignment would (the markers stay, so the fingerprints still apply)."""
    blocks = {f"{a.id} · {b.label}": b for b in course.locate(a)}
    for file in sorted({b.file for b in blocks.values()}):
        path = tree / file
        text = path.read_text()
        lines, out, position = text.splitlines(), [], 0
        for first, last in student_regions(text):
            label = lines[first].strip()[len(STUDENT_BEGIN):].strip()[1:-1]  # "(a2 · bc_loss)" -> "a2 · bc_loss"
            out += lines[position: first + 1]
            out += list(blocks[label].body) if label in blocks else lines[first + 1: last]
            position = last
        out += lines[position:]
        path.write_text("\n".join(out) + ("\n" if text.endswith("\n") else ""))


def _mutant(course: Course, a: Assignment, path: Path, scratch: Path) -> tuple[list[str], list[str], RunResult]:
    m = read_mutant(path)
    tree = scratch / f"mutant-{a.id}-{m.name}"
    files = [f for f in source_files(course.root) if f.startswith(PACKAGES)]
    write_tree(course, a, tree, substitute=m.blocks, stub=False, student_files=False, files=files)
    result = run_tests(tree, _tests(course, a), a.timeout_s)
    caught = [t for t in result.tests if t.outcome == "failed" and t.phase == "call" and t.assertion]
    problems = []
    if not caught:
        other = [t for t in result.tests if t.outcome != "passed"]
        why = f"; it only made {len(other)} test(s) fail without an assertion" if other else ""
        problems.append(f"mutant {m.name} ({m.description}) is caught by no assertion{why}")
    lines = [f"(c) mutant {m.name}: caught by {len(caught)} test(s)"
             + (f", e.g. {caught[0].name}" if caught else "") + f" ({result.seconds:.1f} s)"]
    shutil.rmtree(tree, ignore_errors=True)
    return lines, problems, result


def check_course(course: Course, only: list[str] | None = None, jobs: int = 2,
                 progress: Callable[[str], None] | None = None) -> CheckReport:
    """Run (a)-(d) for every assignment (or those in ``only``); see the module docstring."""
    start = time.perf_counter()
    report = CheckReport()
    report.course_problems, static = static_problems(course)
    chosen = [a for a in course.assignments if only is None or a.id in only]
    for a in chosen:
        report.lines[a.id] = []
        report.problems[a.id] = list(static[a.id])
        report.seconds[a.id] = 0.0
    with tempfile.TemporaryDirectory(prefix="minirl-course-check-") as tmp:
        scratch = Path(tmp)
        jobs_list = []
        for a in chosen:
            jobs_list.append((a, _reference, (course, a)))
            jobs_list.append((a, _student, (course, a, scratch)))
            for path in course.mutants(a):
                jobs_list.append((a, _mutant, (course, a, path, scratch)))
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [(a, pool.submit(fn, *args)) for a, fn, args in jobs_list]
            for a, future in futures:
                try:
                    lines, problems, result = future.result()
                except ValueError as err:
                    lines, problems, result = [], [str(err)], RunResult()
                report.lines[a.id] += lines
                report.problems[a.id] += problems
                report.seconds[a.id] += result.seconds
                if progress:
                    for line in lines:
                        progress(f"{a.id}: {line}")
    report.total_seconds = time.perf_counter() - start
    return report
