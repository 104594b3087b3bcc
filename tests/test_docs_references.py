"""Citations in code, notebooks and the README resolve: every ``docs/equations.md §N`` names a section of the
equation sheet (with its fixed anchor ``{#eq-N}``), and every ``docs/<path>.md`` cited exists."""

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
