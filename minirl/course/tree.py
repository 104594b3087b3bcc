"""Student trees: a copy of the repository with one assignment's blocks replaced by stubs, its public
tests and questions, and fingerprints of everything the student must leave alone.

Layout of a built tree::

    DIR/minirl, llmtrack, notebooks, docs, ...   the repository's files (no .git, tests/ or course/)
    DIR/assignment/README.md                     what to implement, how to grade, what to look for
    DIR/assignment/QUESTIONS.md                  the written questions (answers removed)
    DIR/assignment/tests/test_*.py               the public tests (course/public/<id>)
    DIR/.course/build.json                       what was stubbed, and the fingerprints

Design decisions:

* **Files come from ``git ls-files``** (tracked plus untracked-but-not-ignored), so a virtual
  environment, caches or a local ``figures/`` never leak into a release; ``tests/``, ``course/`` and
  ``.ci/`` are left out: the library's own tests would tell the student the answers, and the
  course folder holds the hidden graders, mutants and answers.
* **Other assignments' blocks keep their reference code** and lose their markers (a student of a4
  needs a working GAE); ``cumulative=True`` stubs the assignment and every later one, for a course
  that hands out one tree and builds on it.
* **Fingerprints** (:func:`fingerprints`): each file's SHA-256 with the student regions masked, plus a
  3-byte hash per line so that a refused edit can be reported with its file and line. Notebooks,
  ``.course/`` and caches are not fingerprinted: students run the notebooks.
* **Verified before it is handed out** (:func:`verify_tree`): every Python file parses, the packages
  import, and no line of a stubbed solution (16 characters or more) nor of an answer survives anywhere.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from minirl.course.blocks import (BEGIN, END, STUDENT_END, Block, find_blocks, solution_lines, stub_lines,
                                  student_regions)
from minirl.course.manifest import Assignment, Course

__all__ = ["BUILD_FILE", "source_files", "write_tree", "fingerprints", "compare_fingerprints", "verify_tree",
           "read_build", "strip_answers", "BuiltTree"]

BUILD_FILE = ".course/build.json"
"""Where a built tree records what it is (its presence is what makes a directory a student tree)."""
FORMAT = 1
_LEFT_OUT = ("tests/", "course/", ".ci/", ".github/")
_NOT_FINGERPRINTED = (".course/", "results.json", "assignment/QUESTIONS.md")
_SKIP_PARTS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".git", ".venv", "figures"}
_SUSPICIOUS_NEW = {"conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "sitecustomize.py", "usercustomize.py"}
ANSWER_BEGIN, ANSWER_END = "<!-- BEGIN ANSWER -->", "<!-- END ANSWER -->"


@dataclass
class BuiltTree:
    """What :func:`write_tree` made: the stubbed blocks (with their lines in the built file) and the files."""

    path: Path
    assignment: Assignment
    stubbed: list[tuple[str, Block, int]] = field(default_factory=list)  # (assignment id, block, 1-based line)
    files: list[str] = field(default_factory=list)
    public_tests: list[str] = field(default_factory=list)


def source_files(root: Path) -> list[str]:
    """The repository's files a student tree starts from (relative posix paths, sorted)."""
    if (root / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, check=True).stdout.decode()
        names = [n for n in out.split("\0") if n]
    else:  # an unpacked archive: everything but the usual clutter
        names = [p.relative_to(root).as_posix() for p in root.rglob("*")
                 if p.is_file() and not (set(p.relative_to(root).parts) & _SKIP_PARTS)
                 and not any(part.endswith(".egg-info") for part in p.parts)]
    return sorted({n for n in names if (root / n).is_file() and not n.startswith(_LEFT_OUT)
                   and not (set(Path(n).parts) & _SKIP_PARTS)})


def _indent(text: str, indent: str) -> list[str]:
    body = textwrap.dedent(text).strip("\n").splitlines()
    return [indent + line if line.strip() else "" for line in body]


def transform(text: str, file: str, stub: dict[str, str], substitute: dict[str, str] | None = None
              ) -> tuple[str, list[tuple[str, Block, int]]]:
    """One source file, rewritten: blocks named in ``stub`` (block name -> assignment id) become stubs,
    blocks named in ``substitute`` (block name -> code) take that code, every other block keeps its code
    and loses its markers. Returns the new text and the stubs made (assignment, block, 1-based line)."""
    substitute = substitute or {}
    lines = text.splitlines()
    out: list[str] = []
    made = []
    position = 0
    for block in find_blocks(text, file):
        out.extend(lines[position: block.begin])
        if block.name in stub:
            made.append((stub[block.name], block, len(out) + 1))
            out.extend(stub_lines(block, stub[block.name]))
        elif block.name in substitute:
            out.extend(_indent(substitute[block.name], block.indent))
        else:
            out.extend(block.body)
        position = block.end + 1
    out.extend(lines[position:])
    return "\n".join(out) + ("\n" if text.endswith("\n") else ""), made


def _split_answers(text: str) -> tuple[list[str], list[str]]:
    """A questions file's lines outside and inside the ANSWER markers (the markers themselves dropped)."""
    questions, answers, inside = [], [], False
    for line in text.splitlines():
        if line.strip() == ANSWER_BEGIN:
            inside = True
        elif line.strip() == ANSWER_END:
            inside = False
        else:
            (answers if inside else questions).append(line)
    return questions, answers


def strip_answers(text: str) -> str:
    """A questions file without the instructor's answers (between the ANSWER markers)."""
    return "\n".join(_split_answers(text)[0]).rstrip() + "\n"


def _answer_lines(text: str) -> list[str]:
    """The answers' substantial lines (24 characters or more), to look for leaks in a student tree."""
    return [line.strip() for line in _split_answers(text)[1] if len(line.strip()) >= 24]


def _notebook_header(course: Course, a: Assignment, stubbed: list[tuple[str, Block, int]]) -> dict:
    todo = "\n".join(f"- `{b.label}` in `{b.file}` (line {line})" for aid, b, line in stubbed if aid == a.id)
    text = (f"## Assignment {a.id} (student version): {a.title}\n\n"
            f"**What to implement.** Each of these raises `NotImplementedError(\"{a.id} · ...\")` until you "
            f"write it; its comment says what to define:\n\n{todo}\n\n"
            "**How to grade.** From the root of this tree: `minirl course grade .` runs the public tests "
            "(`assignment/tests/`) and prints your points; your instructor also runs hidden tests. "
            "Change code only between the `BEGIN STUDENT CODE` and `END STUDENT CODE` lines: the grader "
            "refuses a tree edited anywhere else.\n\n"
            + (f"**What to look for.** {a.look_for}\n\n" if a.look_for else "")
            + "**Questions.** `assignment/QUESTIONS.md`. Until your code works, the cells below that call "
            "it stop with the not-implemented message.")
    return {"cell_type": "markdown", "id": f"student-{a.id}", "metadata": {},
            "source": [line + "\n" for line in text.splitlines()[:-1]] + [text.splitlines()[-1]]}


def _readme(course: Course, a: Assignment, built: BuiltTree, cumulative: bool) -> str:
    rows = "\n".join(f"| {aid} | `{b.file}` line {line} | `{b.label}` |" for aid, b, line in built.stubbed)
    prereq = ", ".join(a.prerequisites) or "none"
    return (f"# Assignment {a.id}: {a.title}\n\n"
            f"Points: {a.points} (public tests here, hidden tests when your instructor grades). "
            f"Prerequisites: {prereq}. Survey sections: {', '.join(a.survey) or '-'}. "
            f"Equation sheet (docs/equations.md): {', '.join(a.equations) or '-'}.\n\n"
            "## What to implement\n\n"
            "Each region below raises `NotImplementedError` until you replace it; its comment says what to "
            "define. Write only between `# BEGIN STUDENT CODE` and `# END STUDENT CODE`.\n\n"
            f"| assignment | where | function |\n|---|---|---|\n{rows}\n\n"
            + ("This tree is cumulative: later assignments' regions are stubs too.\n\n" if cumulative else "")
            + "## How to grade\n\n"
            "    pip install -e .           # once, in a virtual environment\n"
            f"    minirl course grade .      # public tests: prints {a.id}: x/y points and writes results.json\n"
            "    minirl course submit .     # checks the tree and packs your regions for upload\n\n"
            "A test that reaches a region you have not written reports `not implemented: <assignment> · "
            "<function>`. Editing anything outside the regions makes the grader refuse the tree (it names the "
            "file and line).\n\n"
            + (f"## The experiment\n\n`{a.notebook}`: {a.look_for}\n\n" if a.notebook else "")
            + "## Written questions\n\nSee `QUESTIONS.md`.\n")


def write_tree(course: Course, a: Assignment, dest: Path, cumulative: bool = False,
               substitute: dict[str, str] | None = None, stub: bool = True, student_files: bool = True,
               files: list[str] | None = None) -> BuiltTree:
    """Write the student tree of ``a`` into the (new, empty) folder ``dest``.

    ``stub=False`` with ``substitute`` writes a *mutant* tree instead (the reference code, with the named
    blocks replaced); ``student_files=False`` leaves out assignment/, the notebook header and the
    fingerprints (what :mod:`minirl.course.check` needs for its throw-away trees), and ``files`` limits the
    copy (e.g. to the packages).
    """
    stubbed_as: dict[str, str] = {}
    if stub:
        for owner in (course.later(a) if cumulative else [a]):
            for block in course.locate(owner):
                stubbed_as[block.name] = owner.id
    else:
        course.locate(a)  # the manifest must still name real blocks
    built = BuiltTree(path=dest, assignment=a)
    for name in files if files is not None else source_files(course.root):
        src = course.root / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".py") and BEGIN in (text := src.read_text()):
            new, made = transform(text, name, stubbed_as, substitute)
            target.write_text(new)
            built.stubbed.extend(made)
        else:
            shutil.copy2(src, target)
        built.files.append(name)
    if not student_files:
        return built
    order = {b: i for i, b in enumerate(stubbed_as)}
    built.stubbed.sort(key=lambda m: (course.get(m[0]).order, order[m[1].name]))
    (dest / "assignment" / "tests").mkdir(parents=True, exist_ok=True)
    for test in sorted(course.public_dir(a).glob("test_*.py")):
        shutil.copy2(test, dest / "assignment" / "tests" / test.name)
        built.public_tests.append(f"assignment/tests/{test.name}")
    questions = course.questions(a)
    if questions.is_file():
        (dest / "assignment" / "QUESTIONS.md").write_text(strip_answers(questions.read_text()))
    (dest / "assignment" / "README.md").write_text(_readme(course, a, built, cumulative))
    if a.notebook and (dest / a.notebook).is_file():
        path = dest / a.notebook
        nb = json.loads(path.read_text())
        nb["cells"].insert(1, _notebook_header(course, a, built.stubbed))
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    record = {
        "format": FORMAT,
        "tool": "minirl course build",
        "assignment": a.id,
        "title": a.title,
        "cumulative": cumulative,
        "timeout_s": a.timeout_s,
        "stubbed": [{"assignment": aid, "block": b.name, "line": line} for aid, b, line in built.stubbed],
        "public_tests": built.public_tests,
        "source": _source(course.root),
    }
    record["fingerprints"] = fingerprints(dest)
    (dest / ".course").mkdir(exist_ok=True)
    (dest / BUILD_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return built


def _source(root: Path) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


# ----------------------------------------------------------------------------------------------
# Fingerprints
# ----------------------------------------------------------------------------------------------

def _fingerprinted(name: str) -> bool:
    return not (name.startswith(_NOT_FINGERPRINTED) or name.endswith(".ipynb")
                or set(Path(name).parts) & _SKIP_PARTS or name.endswith(".pyc"))


def _tree_files(tree: Path) -> list[str]:
    return sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*")
                  if p.is_file() and not p.is_symlink() and not set(p.relative_to(tree).parts) & _SKIP_PARTS)


def _masked_lines(text: str) -> list[str]:
    """The lines of a file with the inside of every student region dropped (its markers kept)."""
    lines = text.splitlines()
    drop = set()
    for first, last in student_regions(text):
        drop.update(range(first + 1, last))
    return [line for i, line in enumerate(lines) if i not in drop]


def _line_hash(line: str) -> str:
    return hashlib.blake2b(line.encode(), digest_size=3).hexdigest()


def _fingerprint(path: Path) -> dict:
    data = path.read_bytes()
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return {"sha256": hashlib.sha256(data).hexdigest()}
    lines = _masked_lines(text)
    return {"sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
            "lines": "".join(_line_hash(line) for line in lines)}


def fingerprints(tree: Path) -> dict[str, dict]:
    """file -> fingerprint of every fingerprinted file of a tree (see the module docstring)."""
    return {name: _fingerprint(tree / name) for name in _tree_files(tree) if _fingerprinted(name)}


def compare_fingerprints(tree: Path, recorded: dict[str, dict]) -> list[str]:
    """Every edit outside the student regions, as ``<file>:<line>: <what>`` (an empty list: untouched)."""
    problems = []
    for name, fp in recorded.items():
        path = tree / name
        if not path.is_file():
            problems.append(f"{name}: deleted")
            continue
        now = _fingerprint(path)
        if now["sha256"] == fp["sha256"]:
            continue
        if "lines" not in fp or "lines" not in now:
            problems.append(f"{name}: changed")
            continue
        text = path.read_text()
        begins = [line for line in text.splitlines() if line.strip().startswith("# BEGIN STUDENT CODE")]
        ends = [line for line in text.splitlines() if line.strip() == STUDENT_END]
        if len(begins) != len(ends):
            problems.append(f"{name}: a '# BEGIN STUDENT CODE' / '# END STUDENT CODE' marker was removed or altered")
            continue
        old = [fp["lines"][i: i + 6] for i in range(0, len(fp["lines"]), 6)]
        new = [now["lines"][i: i + 6] for i in range(0, len(now["lines"]), 6)]
        kept = _masked_line_numbers(text)
        for tag, i1, _, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
            if tag != "equal":
                line = kept[j1] + 1 if j1 < len(kept) else len(text.splitlines())
                what = "deleted lines before" if j1 == j2 else "changed outside the student regions"
                problems.append(f"{name}:{line}: {what}")
                break
    for name in _tree_files(tree):
        if name in recorded or not _fingerprinted(name):
            continue
        base = Path(name).name
        inside_package = name.startswith(("minirl/", "llmtrack/", "assignment/"))
        if base in _SUSPICIOUS_NEW or name.endswith(".pth") or (inside_package and name.endswith(".py")):
            problems.append(f"{name}: new file (the grader refuses new Python or pytest files in the tree; "
                            "keep experiments in a notebook or outside minirl/ and llmtrack/)")
    return problems


def _masked_line_numbers(text: str) -> list[int]:
    lines = text.splitlines()
    drop = set()
    for first, last in student_regions(text):
        drop.update(range(first + 1, last))
    return [i for i in range(len(lines)) if i not in drop]


def read_build(tree: Path, field_name: str = "dir") -> dict:
    """The build record of a student tree; a ValueError naming ``field_name`` if ``tree`` is not one."""
    if not tree.is_dir():
        raise ValueError(f"{field_name}: {str(tree)!r} is not a folder")
    path = tree / BUILD_FILE
    if not path.is_file():
        raise ValueError(f"{field_name}: {str(tree)!r} is not a student tree built by 'minirl course build' "
                         f"(no {BUILD_FILE})")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ValueError(f"{field_name}: {path} is not valid JSON") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or "fingerprints" not in record:
        raise ValueError(f"{field_name}: {path} is not a build record of this version of minirl course")
    return record


# ----------------------------------------------------------------------------------------------
# Verification
# ----------------------------------------------------------------------------------------------

def verify_tree(course: Course, built: BuiltTree, import_check: bool = True) -> list[str]:
    """Problems with a freshly built tree (empty: it may be handed out)."""
    tree = built.path
    problems = []
    leaks: dict[str, str] = {}
    for _, block, _ in built.stubbed:
        for line in solution_lines(block):
            leaks.setdefault(line, block.name)
    # A line the sources also show outside the stubbed blocks (policy iteration's one-step look-ahead
    # is value iteration's too) is part of what the student is given, not a leak.
    stubbed_spans: dict[str, list[tuple[int, int]]] = {}
    for _, block, _ in built.stubbed:
        stubbed_spans.setdefault(block.file, []).append((block.begin, block.end))
    for name in built.files:
        if not name.endswith((".py", ".md", ".ipynb")) or not leaks:
            continue
        spans = stubbed_spans.get(name, [])
        for i, line in enumerate((course.root / name).read_text(errors="replace").splitlines()):
            if not any(b <= i <= e for b, e in spans):
                leaks.pop(line.split("  #")[0].strip(), None)
    for owner in ([built.assignment] if built.stubbed else []):
        questions = course.questions(owner)
        if questions.is_file():
            for line in _answer_lines(questions.read_text()):
                leaks.setdefault(line, f"the answers of {questions.name}")
    for name in _tree_files(tree):
        path = tree / name
        if name.endswith(".py"):
            try:
                ast.parse(path.read_text(), filename=name)
            except SyntaxError as err:
                problems.append(f"{name}:{err.lineno}: does not parse ({err.msg})")
        if not name.endswith((".py", ".md", ".ipynb", ".toml", ".txt", ".yml", ".yaml", ".json", ".cfg")):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for i, line in enumerate(text.splitlines()):
            stripped = line.strip().strip('",').replace('\\"', '"').replace("\\n", "").strip()
            code = stripped.split("  #")[0].strip()
            if code in leaks or stripped in leaks:
                problems.append(f"{name}:{i + 1}: a line of the solution of {leaks.get(code) or leaks[stripped]} "
                                "survives")
            if name.endswith(".py") and line.strip() in (BEGIN, END):
                problems.append(f"{name}:{i + 1}: a solution marker survives")
    if import_check and not problems:
        problems.extend(import_problems(tree))
    return problems


IMPORT_SCRIPT = """
import importlib, os, pkgutil, sys
bad = []
for package in sys.argv[2:]:
    mod = importlib.import_module(package)
    if not os.path.realpath(mod.__file__).startswith(sys.argv[1]):
        bad.append(f"{package}: imported from {mod.__file__}, not from the tree")
        continue
    for info in pkgutil.walk_packages(mod.__path__, package + "."):
        try:
            importlib.import_module(info.name)
        except ImportError as err:
            if getattr(err, "name", None) and not err.name.startswith(("minirl", "llmtrack")):
                continue  # an optional dependency that is not installed here
            bad.append(f"{info.name}: {type(err).__name__}: {err}")
        except Exception as err:
            bad.append(f"{info.name}: {type(err).__name__}: {err}")
print("\\n".join(bad))
"""


def import_problems(tree: Path) -> list[str]:
    """Import every module of the tree's packages in a fresh interpreter; the modules that fail."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    packages = [p for p in ("minirl", "llmtrack") if (tree / p / "__init__.py").is_file()]
    done = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT, str(tree.resolve()), *packages], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return [f"import check failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"]
    return [f"does not import: {line}" for line in done.stdout.splitlines() if line.strip()]
