"""The architecture, checked by reading every import with `ast` (nothing is imported or run).

The library's claim is one set of algorithms (minirl) run on two worlds; these tests keep the code
honest about it. The layers, bottom to top:

    minirl:   the world and the currency (mdp, envs, data, policies, rollout, checks, ...)
              -> algos (every algorithm, loss and estimator)
              -> experiments -> plots -> cli
    llmtrack: the world (tokenizer, models, policy, mdp, rollout, reward_model, tasks)
              -> pipelines (compositions of minirl's algorithms) -> experiments -> plots -> cli

A module may import its own layer or lower ones, never a higher one; imports inside functions count
(a lazy import hides a cycle, it does not remove it). minirl never imports llmtrack. No private name
(``_x``) is imported from another module: what two modules share is public. Solution markers, which
the course tooling turns into exercises, mark algorithms, so they live only in minirl. An algorithm
module stays short enough to read top to bottom.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("minirl", "llmtrack")
ALGORITHM_LINE_BUDGET = 350  # lines per module under minirl/algos/

# the layer of each unit (a top-level module, or a sub-package taken whole); higher imports lower
LAYERS = {
    "minirl": {"algos": 1, "experiments": 2, "plots": 3, "cli": 4},  # anything else: 0
    "llmtrack": {"pipelines": 1, "experiments": 2, "plots": 3, "cli": 4},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


MODULES = source_files()


def imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import of our packages in one file."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] in PACKAGES:
                names = [a.name for a in node.names]
                # `from pkg import module` imports the module too
                found.append((target, names, node.lineno))
                for n in names:
                    if f"{target}.{n}" in MODULES:
                        found.append((f"{target}.{n}", [], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    found.append((alias.name, [], node.lineno))
    return found


EDGES = [(src, dst, names, line) for src, path in MODULES.items() for dst, names, line in imports(src, path)]


def unit(name: str) -> str:
    """The unit a module belongs to: its package's top-level module or sub-package."""
    parts = name.split(".")
    return ".".join(parts[:2])


def layer(name: str) -> int:
    parts = name.split(".")
    return LAYERS[parts[0]].get(parts[1], 0) if len(parts) > 1 else 0


def where(src: str, line: int) -> str:
    return f"{MODULES[src].relative_to(ROOT)}:{line}"


def test_minirl_never_imports_llmtrack():
    bad = [f"{where(s, ln)} imports {d}" for s, d, _, ln in EDGES if s.startswith("minirl") and d.startswith("llmtrack")]
    assert not bad, "\n".join(bad)


def test_algorithms_import_no_experiment_plot_or_command():
    """minirl/algos/ is written against the batch and the policy protocol: no figures, demos or CLIs."""
    bad = []
    for name, path in MODULES.items():
        if name.startswith("minirl.algos"):
            text = path.read_text()
            if re.search(r"^\s*(import|from)\s+matplotlib", text, re.M):
                bad.append(f"{path.relative_to(ROOT)} imports matplotlib")
    for s, d, _, ln in EDGES:
        if s.startswith("minirl.algos") and unit(d) in ("minirl.experiments", "minirl.plots", "minirl.cli",
                                                         "minirl.command"):
            bad.append(f"{where(s, ln)} imports {d}")
    assert not bad, "\n".join(bad)


def test_llmtrack_uses_minirl_below_its_demos():
    """llmtrack builds on minirl's world and algorithms; minirl's demos and command are not a library.
    Only llmtrack's own figures and command may use minirl's figures."""
    bad = []
    for s, d, _, ln in EDGES:
        if s.startswith("llmtrack") and d.startswith("minirl."):
            if unit(d) in ("minirl.experiments", "minirl.cli"):
                bad.append(f"{where(s, ln)} imports {d}")
            elif unit(d) == "minirl.plots" and layer(s) < LAYERS["llmtrack"]["plots"]:
                bad.append(f"{where(s, ln)} imports {d}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_upward_import(package):
    bad = []
    for s, d, _, ln in EDGES:
        if s.split(".")[0] == package == d.split(".")[0] and "." in s and "." in d and unit(s) != unit(d):
            if layer(d) > layer(s):
                bad.append(f"{where(s, ln)}: {unit(s)} (layer {layer(s)}) imports {d} (layer {layer(d)})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm; returns the components with more than one node (the cycles)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_strongly_connected_finds_a_cycle():
    """The cycle finder itself: a -> b -> c -> a is one cycle, d hangs off it."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}) == [{"a", "b", "c"}]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_between_units(package):
    """No two units (top-level modules or sub-packages) of one package import each other, even
    through others. The package's own __init__ only re-exports, so it is left out."""
    graph: dict[str, set[str]] = defaultdict(set)
    for s, d, _, _ in EDGES:
        if s.split(".")[0] == package == d.split(".")[0] and "." in s and "." in d and unit(s) != unit(d):
            graph[unit(s)].add(unit(d))
    assert not strongly_connected(graph), strongly_connected(graph)


def test_no_private_name_imported_across_modules():
    bad = [f"{where(s, ln)} imports {n} from {d}" for s, d, names, ln in EDGES for n in names
           if n.startswith("_") and not n.startswith("__") and d != s]
    assert not bad, "\n".join(bad)


def test_solution_markers_only_in_minirl():
    """Solution blocks mark algorithms; algorithms live in minirl."""
    bad = []
    for path in sorted(ROOT.glob("**/*.py")) + sorted((ROOT / "notebooks").glob("*.ipynb")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("minirl", ".venv", "tests") or rel.parts[0].startswith("."):
            continue
        if "# BEGIN SOLUTION" in path.read_text():
            bad.append(str(rel))
    assert not bad, "solution markers outside minirl/: " + ", ".join(bad)


def test_llmtrack_defines_no_loss():
    """A loss is an algorithm's heart: it is written once, in minirl, against the batch."""
    bad = [f"{MODULES[n].relative_to(ROOT)}: {fn.name}" for n in MODULES if n.startswith("llmtrack")
           for fn in ast.walk(ast.parse(MODULES[n].read_text()))
           if isinstance(fn, (ast.FunctionDef, ast.ClassDef)) and re.search(r"(^|_)loss($|_)", fn.name.lower())]
    assert not bad, "\n".join(bad)


def test_algorithm_modules_within_line_budget():
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / "minirl" / "algos").glob("*.py"))
            if (n := len(p.read_text().splitlines())) > ALGORITHM_LINE_BUDGET}
    assert not long, f"over {ALGORITHM_LINE_BUDGET} lines: {long}"


def test_algorithm_modules_cite_the_equation_sheet():
    """Each algorithm module says which equations it computes (docs/equations.md §N)."""
    missing = [p.name for p in sorted((ROOT / "minirl" / "algos").glob("*.py"))
               if p.name != "__init__.py" and "docs/equations.md §" not in p.read_text()]
    assert not missing, missing
