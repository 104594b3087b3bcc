"""The course manifest (``course/manifest.toml``): which assignments exist and what each one is.

One ``[[assignment]]`` table per assignment, in teaching order::

    [[assignment]]
    id = "a1"
    title = "MDPs without reward: exact solutions"
    survey = ["§2.1", "§2.3"]                 # sections of the survey the assignment follows
    equations = ["§1", "§6"]                  # sections of docs/equations.md
    notebook = "notebooks/01_mdp_without_reward.ipynb"
    prerequisites = []                        # ids of earlier assignments
    points = 12                               # must equal the points of its tests (course check)
    timeout_s = 20                            # per test (optional; default [course].timeout_s)
    look_for = "..."                          # what the notebook shows once the code works
    blocks = [{file = "minirl/mdp.py", function = "value_iteration"}, ...]

A block is named by file and enclosing function (``Class.method`` for a method), with ``index`` when the
function holds several blocks (0 for the first); :mod:`minirl.course.blocks` finds it by its markers.
The graders live beside the manifest: ``public/<id>/test_*.py`` (shipped to students),
``hidden/<id>/test_*.py`` (never shipped), ``mutants/<id>/*.py`` (wrong implementations the graders
must catch) and ``questions/<id>.md`` (written questions; answers between ``<!-- BEGIN ANSWER -->`` and
``<!-- END ANSWER -->``, removed from the student's copy).

Design decision: the manifest is data, read with :mod:`tomllib` and validated on load the way configs
are -- a bad entry is one ``ValueError("<field>: <rule>")`` naming the assignment and the field -- and
:func:`Course.locate` resolves every block against the sources before anything is built, so a manifest
that names a block that does not exist fails before a file is written.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minirl.course.blocks import Block, BlockError, find_blocks

__all__ = ["BlockRef", "Assignment", "Course", "load_course", "COURSE_DIR"]

COURSE_DIR = "course"
"""The course material's folder in the repository."""
_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class BlockRef:
    """A block as the manifest names it: file, enclosing function's qualname, index among its blocks."""

    file: str
    function: str
    index: int = 0

    @property
    def name(self) -> str:
        return f"{self.file}::{self.function}" + (f"#{self.index}" if self.index else "")


@dataclass(frozen=True)
class Assignment:
    """One assignment of the manifest (fields as in the module docstring)."""

    id: str
    title: str
    blocks: tuple[BlockRef, ...]
    points: int
    survey: tuple[str, ...] = ()
    equations: tuple[str, ...] = ()
    notebook: str | None = None
    prerequisites: tuple[str, ...] = ()
    timeout_s: float = 30.0
    look_for: str = ""
    order: int = 0


@dataclass(frozen=True)
class Course:
    """The manifest, validated; ``root`` is the repository, ``material`` its ``course/`` folder."""

    root: Path
    material: Path
    title: str
    assignments: tuple[Assignment, ...]
    ignore: tuple[str, ...] = field(default=())

    def get(self, assignment_id: str, field_name: str = "id") -> Assignment:
        for a in self.assignments:
            if a.id == assignment_id:
                return a
        known = ", ".join(a.id for a in self.assignments)
        raise ValueError(f"{field_name}: no assignment {assignment_id!r} in {self.material / 'manifest.toml'} "
                         f"(known: {known})")

    def public_dir(self, a: Assignment) -> Path:
        return self.material / "public" / a.id

    def hidden_dir(self, a: Assignment) -> Path:
        return self.material / "hidden" / a.id

    def mutants(self, a: Assignment) -> list[Path]:
        return sorted((self.material / "mutants" / a.id).glob("*.py"))

    def questions(self, a: Assignment) -> Path:
        return self.material / "questions" / f"{a.id}.md"

    def later(self, a: Assignment) -> list[Assignment]:
        """``a`` and every assignment after it (what a cumulative build stubs)."""
        return [b for b in self.assignments if b.order >= a.order]

    def locate(self, a: Assignment) -> list[Block]:
        """The source blocks of ``a``, in manifest order; a ValueError naming the block if one is missing."""
        found = []
        cache: dict[str, list[Block]] = {}
        for ref in a.blocks:
            if ref.file not in cache:
                path = self.root / ref.file
                if not path.is_file():
                    raise ValueError(f"blocks: {a.id} names {ref.name}, but {ref.file} does not exist")
                try:
                    cache[ref.file] = find_blocks(path.read_text(), ref.file)
                except BlockError as err:
                    raise ValueError(f"blocks: {err}") from None
            same = [b for b in cache[ref.file] if b.qualname == ref.function]
            if ref.index >= len(same):
                where = f"{len(same)} block(s) in {ref.function}" if same else f"no '# BEGIN SOLUTION' block in {ref.function}"
                raise ValueError(f"blocks: {a.id} names {ref.name}, but {ref.file} has {where}")
            found.append(same[ref.index])
        return found

    def all_source_blocks(self) -> list[Block]:
        """Every marked block in the packages (``minirl``, ``llmtrack``), for the ownership check."""
        blocks = []
        for package in ("minirl", "llmtrack"):
            for path in sorted((self.root / package).rglob("*.py")):
                text = path.read_text()
                if "# BEGIN SOLUTION" in text:
                    blocks.extend(find_blocks(text, path.relative_to(self.root).as_posix()))
        return blocks


def _strings(value: Any, field_name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field_name}: must be a list of strings")
    return tuple(value)


def _assignment(raw: Any, order: int, default_timeout: float, seen: list[str]) -> Assignment:
    if not isinstance(raw, dict):
        raise ValueError(f"assignment[{order}]: must be a table")
    aid = raw.get("id")
    if not isinstance(aid, str) or not _ID.match(aid):
        raise ValueError(f"assignment[{order}].id: must be a short lower-case name like 'a1', got {aid!r}")
    where = f"assignment {aid}"
    if aid in seen:
        raise ValueError(f"{where}.id: appears twice")
    known = {"id", "title", "blocks", "points", "survey", "equations", "notebook", "prerequisites", "timeout_s",
             "look_for"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown field (known: {', '.join(sorted(known))})")
    title = raw.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"{where}.title: must be a non-empty string")
    points = raw.get("points")
    if not isinstance(points, int) or isinstance(points, bool) or points < 1:
        raise ValueError(f"{where}.points: must be an integer >= 1, got {points!r}")
    blocks_raw = raw.get("blocks")
    if not isinstance(blocks_raw, list) or not blocks_raw:
        raise ValueError(f"{where}.blocks: must be a non-empty list of {{file, function[, index]}} tables")
    blocks = []
    for i, b in enumerate(blocks_raw):
        if not isinstance(b, dict) or not isinstance(b.get("file"), str) or not isinstance(b.get("function"), str):
            raise ValueError(f"{where}.blocks[{i}]: must be a table with string fields 'file' and 'function'")
        if set(b) - {"file", "function", "index"}:
            raise ValueError(f"{where}.blocks[{i}]: unknown field {sorted(set(b) - {'file', 'function', 'index'})[0]!r}")
        index = b.get("index", 0)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(f"{where}.blocks[{i}].index: must be an integer >= 0, got {index!r}")
        ref = BlockRef(b["file"], b["function"], index)
        if ref in blocks:
            raise ValueError(f"{where}.blocks[{i}]: {ref.name} is listed twice")
        blocks.append(ref)
    prerequisites = _strings(raw.get("prerequisites", []), f"{where}.prerequisites")
    for p in prerequisites:
        if p not in seen:
            raise ValueError(f"{where}.prerequisites: {p!r} is not an earlier assignment")
    timeout = raw.get("timeout_s", default_timeout)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 600:
        raise ValueError(f"{where}.timeout_s: must be a number of seconds in (0, 600], got {timeout!r}")
    notebook = raw.get("notebook")
    if notebook is not None and not isinstance(notebook, str):
        raise ValueError(f"{where}.notebook: must be a path string")
    look_for = raw.get("look_for", "")
    if not isinstance(look_for, str):
        raise ValueError(f"{where}.look_for: must be a string")
    return Assignment(id=aid, title=title.strip(), blocks=tuple(blocks), points=points,
                      survey=_strings(raw.get("survey", []), f"{where}.survey"),
                      equations=_strings(raw.get("equations", []), f"{where}.equations"),
                      notebook=notebook, prerequisites=prerequisites, timeout_s=float(timeout),
                      look_for=look_for.strip(), order=order)


def load_course(root: str | Path) -> Course:
    """Read and validate ``<root>/course/manifest.toml``; a ValueError ``<field>: <rule>`` if anything is wrong.

    Checks the manifest itself (fields, ids, prerequisites earlier, no block owned twice) and that the
    files it points to exist; the blocks are resolved against the sources by :meth:`Course.locate`.
    """
    root = Path(root)
    material = root / COURSE_DIR
    path = material / "manifest.toml"
    if not path.is_file():
        raise ValueError(f"course: no manifest at {path} (run from a checkout of the repository)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"course: {path} is not valid TOML ({err})") from None
    head = raw.get("course", {})
    if not isinstance(head, dict):
        raise ValueError("course: [course] must be a table")
    default_timeout = head.get("timeout_s", 30.0)
    seen: list[str] = []
    assignments = []
    for order, entry in enumerate(raw.get("assignment", [])):
        a = _assignment(entry, order, default_timeout, seen)
        seen.append(a.id)
        assignments.append(a)
    if not assignments:
        raise ValueError(f"assignment: {path} defines no [[assignment]]")
    owner: dict[BlockRef, str] = {}
    for a in assignments:
        for ref in a.blocks:
            if ref in owner:
                raise ValueError(f"assignment {a.id}.blocks: {ref.name} already belongs to {owner[ref]}")
            owner[ref] = a.id
        if a.notebook is not None and not (root / a.notebook).is_file():
            raise ValueError(f"assignment {a.id}.notebook: {a.notebook} does not exist")
    return Course(root=root, material=material, title=str(head.get("title", "Course")),
                  assignments=tuple(assignments), ignore=_strings(head.get("ignore", []), "course.ignore"))
