"""Mutants: plausible wrong implementations of an assignment's blocks, kept beside the graders
(``course/mutants/<id>/<name>.py``) to prove that the graders catch the mistakes students make.

A mutant file is a docstring saying what is wrong, then one section per block it replaces::

    \"\"\"GAE that ignores episode ends: the recursion runs on across the end of an episode.\"\"\"
    # BLOCK minirl/algos/ppo.py::gae
    m = mask.to(values.dtype)
    ...

Each section's code replaces the block's body in a copy of the reference tree (re-indented to the
block); every other block keeps the reference code. ``minirl course check`` requires every mutant to
fail at least one graded test *by an assertion* -- a mutant that merely crashes proves nothing about
the grader's oracle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Mutant", "read_mutant"]

_HEADER = "# BLOCK "


@dataclass(frozen=True)
class Mutant:
    """A mutant: its name (the file's stem), what is wrong with it, and block name -> code."""

    name: str
    description: str
    blocks: dict[str, str]


def read_mutant(path: Path) -> Mutant:
    """Parse a mutant file; a ValueError ``mutant <file>: <rule>`` if it is malformed."""
    text = path.read_text()
    where = f"mutant {path.parent.name}/{path.name}"
    try:
        module = ast.parse(text)
    except SyntaxError as err:
        raise ValueError(f"{where}: line {err.lineno} does not parse ({err.msg})") from None
    description = ast.get_docstring(module) or ""
    if not description:
        raise ValueError(f"{where}: needs a docstring saying what is wrong with it")
    blocks: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith(_HEADER):
            current = line[len(_HEADER):].strip()
            if current in blocks:
                raise ValueError(f"{where}: block {current} appears twice")
            blocks[current] = []
        elif current is not None:
            blocks[current].append(line)
    if not blocks:
        raise ValueError(f"{where}: no '{_HEADER}<file>::<function>' section")
    return Mutant(path.stem, description.splitlines()[0], {k: "\n".join(v) for k, v in blocks.items()})
