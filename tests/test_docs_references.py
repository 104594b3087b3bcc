"""Citations in code, notebooks and the README resolve: every ``docs/equations.md §N`` names a section of the
equation sheet (with its fixed anchor ``{#eq-N}``), and every ``docs/<path>.md`` cited exists."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [*ROOT.glob("minirl/**/*.py"), *ROOT.glob("llmtrack/**/*.py"), *ROOT.glob("benchmarks/*.py"),
           *ROOT.glob("notebooks/*.ipynb"), ROOT / "README.md"]


def _citations(pattern: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in SOURCES:
        for match in re.finditer(pattern, path.read_text()):
            found.setdefault(match.group(1), []).append(str(path.relative_to(ROOT)))
    return found


def test_equation_sections_cited_in_code_exist():
    sheet = (ROOT / "docs" / "equations.md").read_text()
    sections = set(re.findall(r"^## §(\d+) .*\{#eq-\1\}$", sheet, re.M))
    cited = _citations(r"docs/equations\.md §(\d+)")
    assert cited, "no citation found: the pattern is stale"
    missing = {n: where for n, where in cited.items() if n not in sections}
    assert not missing, f"cited but not in docs/equations.md: {missing}"


def test_doc_pages_cited_exist():
    cited = _citations(r"\b(docs/[\w/.-]+\.md)")
    missing = {page: where for page, where in cited.items() if not (ROOT / page).is_file()}
    assert not missing, missing



def test_no_citation_points_outside_the_repository():
    for path in SOURCES:
        text = path.read_text()
        for stale in ("EQUATIONS.md", "ARCHITECTURE.md", "shared notes"):
            assert stale not in text.replace("docs/equations.md", ""), (path, stale)


SURVEY = "Inverse Reinforcement Learning Meets Large Language Model Post-Training"
SURVEY_REFERENCE = re.compile(r"\bsurvey (§|eqs?\.|Tables?|Theorems?|Fig\.|Figure|Section|Algorithm)")
OLD_NAME = re.compile(r"\bseed (§|eqs?\.|Tables?|Theorems?|Fig\.|Figure|Section|Algorithm)")


def test_the_survey_is_named_not_called_the_seed():
    """The survey is "the survey" everywhere, and every page or notebook that points into it cites it in
    full once (code points into it too, and the package docstrings cite it)."""
    pages = [*ROOT.glob("docs/**/*.md"), *ROOT.glob("notebooks/*.ipynb"), ROOT / "README.md"]
    stale = {str(p.relative_to(ROOT)) for p in SOURCES + pages if OLD_NAME.search(_text(p))}
    assert not stale, f"'seed §…' for the survey: {sorted(stale)}"
    uncited = [str(p.relative_to(ROOT)) for p in pages if SURVEY_REFERENCE.search(_text(p)) and SURVEY not in _text(p)]
    assert not uncited, f"points into the survey without citing it: {uncited}"
    for package in ("minirl", "llmtrack"):
        assert SURVEY in _text(ROOT / package / "__init__.py"), package


def _text(path: Path) -> str:
    """A page's prose with line breaks and runs of spaces collapsed (a notebook: its cells' sources)."""
    if path.suffix == ".ipynb":
        text = "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])
    else:
        text = path.read_text()
    return " ".join(text.replace("*", "").split())
