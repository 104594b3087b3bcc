"""Course assignments built from the library's solution markers: student trees, an autograder, and
the check that proves the graders sound.

The library *is* the reference solution: the heart of each algorithm is marked ``# BEGIN SOLUTION`` ...
``# END SOLUTION``. ``course/manifest.toml`` groups those blocks into assignments; this package

* **builds** a student tree for one assignment (:mod:`minirl.course.tree`): the repository without its
  history, tests or graders, the assignment's blocks replaced by stubs that raise
  ``NotImplementedError("<assignment> · <function>")``, its public tests and questions, and fingerprints
  of everything outside the student's regions;
* **grades** a tree (:mod:`minirl.course.grading`): public and hidden tests in a fresh interpreter,
  points and a time limit per test, one line per unwritten function, a Gradescope ``results.json``;
  a tree edited outside its regions is refused with the file and line;
* **checks** the course (:mod:`minirl.course.check`): the reference passes everything, each student tree
  fails exactly its own tests with the not-implemented message, every mutant is caught by an assertion.

Which conventions we took, and why: nbgrader's discipline (solution regions become a raising stub;
``validate`` passes on the instructor's version and ``validate --invert`` fails on the student's -- our
check (a) and (b)) and otter-grader's / Gradescope's split into public and hidden tests with points per
test and a ``results.json``; but not their tools, because our solutions live in ``.py`` modules that the
rest of the library imports, not in notebook cells, and a stub must keep every other module importable.

This package imports nothing from minirl's algorithms: it reads files and runs pytest in subprocesses.
The command line is ``minirl course list | build | grade | check | submit`` (:mod:`minirl.cli`).
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from minirl.course.grading import RunResult, format_grade, results_json, run_tests
from minirl.course.manifest import Assignment, Course, load_course
from minirl.course.tree import (BUILD_FILE, BuiltTree, compare_fingerprints, read_build, verify_tree,
                                write_tree)

__all__ = ["load_course", "find_root", "prepare_build", "build", "prepare_grade", "grade", "prepare_submit",
           "submit", "Course", "Assignment", "list_table", "BuildError"]


def find_root(root: str | os.PathLike | None = None) -> Path:
    """The repository whose ``course/manifest.toml`` to use: ``root`` if given, else the checkout this
    ``minirl`` was imported from, else the current folder."""
    if root is not None:
        return Path(root)
    here = Path(__file__).resolve().parents[2]
    return here if (here / "course" / "manifest.toml").is_file() else Path.cwd()


def list_table(course: Course) -> str:
    """The assignments as a text table: id, points, blocks, prerequisites, title."""
    lines = [f"{'id':<4} {'points':>6} {'blocks':>6}  {'needs':<8} title"]
    for a in course.assignments:
        lines.append(f"{a.id:<4} {a.points:>6} {len(a.blocks):>6}  {','.join(a.prerequisites) or '-':<8} {a.title}")
    lines.append(f"{len(course.assignments)} assignments, {sum(a.points for a in course.assignments)} points")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------------------------

class BuildError(RuntimeError):
    """A built tree failed its verification (a solution line survives, a file does not parse or import)."""


@dataclass(frozen=True)
class BuildPlan:
    course: Course
    assignment: Assignment
    out: Path
    cumulative: bool
    replace: bool


def prepare_build(root: Path, assignment_id: str, out: str | os.PathLike, cumulative: bool = False,
                  force: bool = False) -> BuildPlan:
    """Everything ``build`` can refuse, before anything is written: the manifest, the id, every block of the
    assignment (and of later ones if cumulative) found by its markers, and the output folder."""
    from minirl.outputs import check_output_dir

    course = load_course(root)
    a = course.get(assignment_id, "id")
    for owner in course.later(a) if cumulative else [a]:
        course.locate(owner)
    out = Path(out).expanduser()
    replace = False
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"out: {str(out)!r} is a file, not a folder")
        if any(out.iterdir()):
            if not (out / BUILD_FILE).is_file():
                raise ValueError(f"out: {str(out)!r} exists and is not empty; choose a new folder "
                                 "(only a student tree built by minirl is replaced, and only with --force)")
            if not force:
                raise ValueError(f"out: {str(out)!r} holds a student tree already; pass --force to replace it")
        replace = True
    check_output_dir(out.parent if out.parent != Path("") else Path("."), "out")
    if out.resolve().is_relative_to(course.root.resolve()) and (course.root / ".git").exists():
        inside = out.resolve().relative_to(course.root.resolve()).as_posix()
        if not inside.startswith(".") and inside.split("/")[0] in {"minirl", "llmtrack", "course", "tests"}:
            raise ValueError(f"out: {str(out)!r} is inside the repository's sources; build somewhere else")
    return BuildPlan(course, a, out, cumulative, replace)


def build(plan: BuildPlan) -> BuiltTree:
    """Build, verify, and only then move the tree into place (a failed or interrupted build leaves no
    half-written folder: the work happens in a temporary sibling, removed in every case)."""
    from minirl.outputs import WRITTEN, remove_stale_temporaries, temporary_sibling

    parent = plan.out.parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(parent, plan.out.name)
    tmp = temporary_sibling(plan.out, directory=True)
    old = None
    try:
        built = write_tree(plan.course, plan.assignment, tmp, cumulative=plan.cumulative)
        problems = verify_tree(plan.course, built)
        if problems:
            shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
            raise BuildError(f"the built tree failed verification, so nothing was written: {shown}")
        os.chmod(tmp, 0o755)
        if plan.replace:
            old = temporary_sibling(plan.out, directory=True)
            os.rmdir(old)
            os.rename(plan.out, old)
        os.rename(tmp, plan.out)
        WRITTEN.append(plan.out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    built.path = plan.out
    return built


# ----------------------------------------------------------------------------------------------
# grade
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GradePlan:
    tree: Path
    record: dict
    tests: dict[str, list[Path]]
    hidden_available: bool
    timeout_s: float
    results: Path | None


def prepare_grade(tree: str | os.PathLike, root: Path | None = None, public_only: bool = False,
                  results: str | os.PathLike | None = None, force: bool = False) -> GradePlan:
    """Refuse, before running anything, a folder that is not a built tree, or one edited outside its
    regions (the first problems, with file and line). Hidden tests are used when the course material of
    the assignment is here (an instructor's checkout) and ``public_only`` is not set."""
    from minirl.outputs import check_output_dir

    tree = Path(tree).expanduser()
    record = read_build(tree, "dir")
    problems = compare_fingerprints(tree, record["fingerprints"])
    if problems:
        shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        raise ValueError(f"dir: edited outside the student regions: {shown}")
    aid = record["assignment"]
    tests = {"public": [tree / p for p in record["public_tests"]]}
    hidden_available = False
    timeout = float(record.get("timeout_s", 30.0))
    if root is not None and (root / "course" / "manifest.toml").is_file():
        course = load_course(root)
        if any(a.id == aid for a in course.assignments):
            a = course.get(aid)
            timeout = a.timeout_s
            if not public_only:
                tests["public"] = sorted(course.public_dir(a).glob("test_*.py"))  # the canonical copies
                tests["hidden"] = sorted(course.hidden_dir(a).glob("test_*.py"))
                hidden_available = bool(tests["hidden"])
    missing = [str(p) for p in tests["public"] if not p.is_file()]
    if missing:
        raise ValueError(f"dir: public test {missing[0]} is missing")
    out = None
    if results is not False:
        out = Path(results).expanduser() if results is not None else tree / "results.json"
        check_output_dir(out.parent, "results")
        if out.exists() and not force:
            try:
                ours = "minirl_course" in json.loads(out.read_text())
            except (OSError, ValueError):
                ours = False
            if not ours:
                raise ValueError(f"results: {str(out)!r} exists and was not written by minirl course; "
                                 "pass --force to replace it")
    return GradePlan(tree, record, tests, hidden_available, timeout, out)


def grade(plan: GradePlan) -> tuple[RunResult, dict, str]:
    """Run the tests; (result, results.json content, text). Writes results.json atomically if asked."""
    from minirl.outputs import atomic_write_text

    aid = plan.record["assignment"]
    result = run_tests(plan.tree, plan.tests, plan.timeout_s)
    data = results_json(aid, result, plan.hidden_available)
    if plan.results is not None:
        atomic_write_text(plan.results, json.dumps(data, indent=1) + "\n")
    return result, data, format_grade(aid, plan.record.get("title", ""), result, plan.hidden_available)


# ----------------------------------------------------------------------------------------------
# submit
# ----------------------------------------------------------------------------------------------

def prepare_submit(tree: str | os.PathLike, out: str | os.PathLike | None = None, force: bool = False
                   ) -> tuple[Path, dict, Path]:
    """Refuse a tree that is not built or is edited outside its regions, and an archive path that exists."""
    from minirl.outputs import check_output_dir

    tree = Path(tree).expanduser()
    record = read_build(tree, "dir")
    problems = compare_fingerprints(tree, record["fingerprints"])
    if problems:
        raise ValueError(f"dir: edited outside the student regions: {'; '.join(problems[:3])}")
    out = Path(out).expanduser() if out is not None else tree / f"{record['assignment']}-submission.zip"
    check_output_dir(out.parent, "out")
    if out.exists() and not force:
        raise ValueError(f"out: {str(out)!r} exists; pass --force to replace it")
    return tree, record, out


def submit(tree: Path, record: dict, out: Path) -> list[str]:
    """Pack what the student wrote: the files holding student regions, QUESTIONS.md and the build record,
    at their paths in the tree (unzip it over the released tree to grade it). Returns the names packed."""
    from minirl.outputs import atomic_file

    files = sorted({entry["block"].split("::")[0] for entry in record["stubbed"]})
    files += [n for n in ("assignment/QUESTIONS.md", BUILD_FILE) if (tree / n).is_file()]
    with atomic_file(out) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in files:
                archive.write(tree / name, name)
    return files
