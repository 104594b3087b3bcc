"""Solution blocks: find them by their markers, name them by the function around them, and turn them
into stubs.

A block is the lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` (each marker alone on its
line). It is named ``<file>::<qualname>`` -- the innermost function or method that holds it, e.g.
``minirl/algos/ppo.py::gae`` or ``minirl/discriminators.py::AIRLDiscriminator.logit`` -- with ``#<k>``
added when one function holds several (``#0`` is the first). The manifest names blocks this way, so
line numbers may move freely; only renaming the function breaks the name, and then the manifest check
says so.

Design decisions:

* **Markers, not AST surgery.** The text between the markers is replaced line for line, so the rest of
  the file -- comments, formatting -- is byte-identical in the student's copy (the fingerprints of
  :mod:`minirl.course.tree` rely on that).
* **A stub raises.** ``pass`` would leave the names the rest of the function needs undefined, or make a
  loss silently return ``None``; ``raise NotImplementedError("<assignment> · <qualname>")`` fails loudly
  and names exactly what is missing, and the grader turns it into one line.
* **The stub says what to define**, found from the code: the names the block assigns that the function
  uses after it (or "return ..." when the block returns), each with the lines of the function's
  docstring that mention it (its shape notes), and the equation-sheet sections the block cites.
* **The student's region stays marked** (``# BEGIN STUDENT CODE (<assignment> · <qualname>)`` ...
  ``# END STUDENT CODE``) so that the fingerprints can mask exactly what the student may change.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BEGIN", "END", "STUDENT_BEGIN", "STUDENT_END", "Block", "find_blocks", "stub_lines",
           "solution_lines", "student_regions", "NOT_IMPLEMENTED"]

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUDENT_BEGIN = "# BEGIN STUDENT CODE"
STUDENT_END = "# END STUDENT CODE"
NOT_IMPLEMENTED = re.compile(r"^(?P<assignment>[\w-]+) · (?P<function>[\w.<>#]+)$")
"""The message of a stub's NotImplementedError: ``<assignment> · <qualname>``."""
_CITATION = re.compile(r"docs/equations\.md §\d+|(?:seed|survey) (?:eq\.|Theorem|Table) ?[\w.]+")


class BlockError(ValueError):
    """A marker problem in a source file; the message starts with ``<file>:<line>:``."""


@dataclass(frozen=True)
class Block:
    """One marked block of one file.

    Attributes:
        file: the path relative to the repository root, with forward slashes.
        qualname: the enclosing function's qualified name (``Class.method``), or ``<module>``.
        index: its rank among the blocks of the same function (0 for the first).
        begin / end: 0-based line numbers of the two marker lines.
        indent: the whitespace before the BEGIN marker (the stub keeps it).
        body: the lines strictly between the markers, without newlines.
        function: the enclosing ``ast.FunctionDef`` (None at module level), for the stub's analysis.
    """

    file: str
    qualname: str
    index: int
    begin: int
    end: int
    indent: str
    body: tuple[str, ...]
    function: ast.AST | None = None

    @property
    def label(self) -> str:
        """The qualname, with ``#<index>`` from a function's second block on (what a stub's message names)."""
        return self.qualname + (f"#{self.index}" if self.index else "")

    @property
    def name(self) -> str:
        """``<file>::<qualname>``, with ``#<index>`` for a function's second block and later."""
        return f"{self.file}::{self.qualname}" + (f"#{self.index}" if self.index else "")


def _enclosing(tree: ast.AST) -> list[tuple[int, int, str, ast.AST]]:
    """(first line, last line, qualname, node) of every function and class, 1-based lines, outer first."""
    found: list[tuple[int, int, str, ast.AST]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                found.append((child.lineno, child.end_lineno or child.lineno, name, child))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def find_blocks(text: str, file: str, begin: str = BEGIN, end: str = END) -> list[Block]:
    """Every block of one file, in order. Raises :class:`BlockError` on unbalanced or nested markers,
    or when the file does not parse."""
    lines = text.splitlines()
    try:
        tree = ast.parse(text, filename=file)
    except SyntaxError as err:
        raise BlockError(f"{file}:{err.lineno}: does not parse ({err.msg})") from None
    scopes = _enclosing(tree)
    blocks: list[Block] = []
    counts: dict[str, int] = {}
    start: int | None = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(begin):
            if start is not None:
                raise BlockError(f"{file}:{i + 1}: '{begin}' inside the block opened on line {start + 1}")
            start = i
        elif stripped == end:
            if start is None:
                raise BlockError(f"{file}:{i + 1}: '{end}' without a '{begin}' before it")
            inner = [s for s in scopes if s[0] <= start + 1 <= s[1] and not isinstance(s[3], ast.ClassDef)]
            qualname, function = (inner[-1][2], inner[-1][3]) if inner else ("<module>", None)
            indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
            index = counts.get(qualname, 0)
            counts[qualname] = index + 1
            blocks.append(Block(file, qualname, index, start, i, indent, tuple(lines[start + 1: i]), function))
            start = None
    if start is not None:
        raise BlockError(f"{file}:{start + 1}: '{begin}' is never closed by '{end}'")
    return blocks


def solution_lines(block: Block) -> list[str]:
    """The block's lines that would give the answer away: code (not comments or blank lines) of at least
    16 characters once the trailing comment is cut -- short lines like ``return loss`` occur everywhere."""
    out = []
    for line in block.body:
        code = line.split("  #")[0].strip()
        if len(code) >= 16 and not code.startswith("#"):
            out.append(code)
    return out


def _names_to_define(block: Block) -> tuple[list[str], bool]:
    """(names the block assigns and the function reads after it, whether the block returns)."""
    try:
        body = ast.parse(textwrap.dedent("\n".join(block.body)))
    except SyntaxError:
        return [], False
    assigned: list[str] = []
    returns = False
    for node in ast.walk(body):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in assigned:
            assigned.append(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name not in assigned:
            assigned.append(node.name)
        elif isinstance(node, ast.Return):
            returns = True
    if body.body and isinstance(body.body[-1], ast.Return):
        return [], True  # the block ends the function: only what it returns matters
    if block.function is None:
        return assigned, returns
    after = {node.id for node in ast.walk(block.function)
             if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
             and getattr(node, "lineno", 0) > block.end + 1}
    return [name for name in assigned if name in after], returns


def _docstring_notes(block: Block, names: list[str], returns: bool) -> dict[str, str]:
    """For each name, the first docstring line that mentions it; for ``return``, the Returns section."""
    doc = ast.get_docstring(block.function) if isinstance(block.function, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    if not doc:
        return {}
    lines = [line.strip() for line in doc.splitlines()]
    notes = {}
    for name in names:
        for line in lines:
            if re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", line):
                notes[name] = line
                break
    if returns:
        for i, line in enumerate(lines):
            if line.rstrip(":") in ("Returns", "Return", "Yields"):
                section = []
                for more in lines[i + 1:]:
                    if not more or re.match(r"^[A-Z]\w+:$", more):
                        break
                    section.append(more)
                notes["return"] = " ".join(section)
                break
        else:
            notes["return"] = lines[0]  # no Returns section: the summary line says what it computes
    return notes


def stub_lines(block: Block, assignment: str) -> list[str]:
    """The student's region for ``block``: markers, a comment saying what to define, and a raise.

    Every line keeps the block's indentation; the comment is built from the code (see the module
    docstring) and never quotes a line of the solution.
    """
    ind = block.indent
    label = f"{assignment} · {block.label}"
    names, returns = _names_to_define(block)
    notes = _docstring_notes(block, names, returns)
    cites = sorted(set(_CITATION.findall("\n".join(block.body))))
    out = [f"{ind}{STUDENT_BEGIN} ({label})"]
    out.append(f"{ind}# Assignment {assignment}: write this part of {block.qualname}"
               + (f" ({', '.join(cites)})." if cites else "."))
    if names:
        out.append(f"{ind}# Define, for the code after this block:")
        for name in names:
            note = notes.get(name)
            out.append(f"{ind}#   {name}" + (f"  -- docstring: {note}" if note else ""))
    if returns:
        note = notes.get("return")
        annotation = getattr(block.function, "returns", None)
        kind = f" a {ast.unparse(annotation)}" if annotation is not None else ""
        out.append(f"{ind}# Return{kind} from here" + (f"  -- docstring: {note}" if note else "."))
    if not names and not returns:
        out.append(f"{ind}# (See the function's docstring for what this part computes.)")
    out.append(f'{ind}raise NotImplementedError("{label}")')
    out.append(f"{ind}{STUDENT_END}")
    return out


def student_regions(text: str) -> list[tuple[int, int]]:
    """(first, last) 0-based line numbers of each student region's markers in a built file."""
    regions, start = [], None
    for i, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if stripped.startswith(STUDENT_BEGIN):
            start = i
        elif stripped == STUDENT_END and start is not None:
            regions.append((start, i))
            start = None
    return regions


def read_blocks(root: Path, file: str) -> list[Block]:
    """The blocks of ``root / file`` (a BlockError if it is missing or malformed)."""
    path = root / file
    if not path.is_file():
        raise BlockError(f"{file}: no such file")
    return find_blocks(path.read_text(), file)
