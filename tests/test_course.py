"""The course machinery (minirl.course) on a toy repository: stubs, build, grade, fingerprints, bad input.

The toy repository has one package ``minirl`` with one marked block, a manifest, one public and one hidden
test; grading runs pytest in a subprocess on it (no torch: about a second per run). The real course is
checked by ``minirl course check`` in CI; here only that its manifest names blocks that exist.
"""

import json
import textwrap
from pathlib import Path

import pytest

from minirl.cli import main
from minirl.course import find_root, load_course
from minirl.course.blocks import find_blocks, stub_lines

TOY = '''\
def scaled_sum(xs, scale):
    """Sum of xs times scale.

    Returns:
        total: a float, scale * sum(xs).
    """
    if scale < 0:
        raise ValueError("scale: must be >= 0")
    # BEGIN SOLUTION
    total = 0.0
    for x in xs:
        total += x
    total *= scale
    # END SOLUTION
    return total
'''

MANIFEST = '''\
[course]
title = "Toy"
timeout_s = 10

[[assignment]]
id = "t1"
title = "Toy sums"
points = 3
blocks = [{file = "minirl/toy.py", function = "scaled_sum"}]
'''

PUBLIC = '''\
import pytest
from minirl.toy import scaled_sum

@pytest.mark.points(2)
def test_sum():
    assert scaled_sum([1.0, 2.0], 3.0) == 9.0
'''

HIDDEN = '''\
from minirl.toy import scaled_sum

def test_empty():
    assert scaled_sum([], 2.0) == 0.0
'''


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    files = {"minirl/__init__.py": "", "minirl/toy.py": TOY, "course/manifest.toml": MANIFEST,
             "course/public/t1/test_toy.py": PUBLIC, "course/hidden/t1/test_toy_hidden.py": HIDDEN,
             "course/questions/t1.md": "Q1. Why?\n<!-- BEGIN ANSWER -->\nBecause sums are linear in scale.\n<!-- END ANSWER -->\n",
             "tests/test_secret.py": "x = 1\n"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def course(*args: str) -> int:
    return main(["course", *args])


def test_stub_keeps_the_indentation_says_what_to_define_and_raises():
    [block] = find_blocks(TOY, "minirl/toy.py")
    assert (block.qualname, block.index, block.indent) == ("scaled_sum", 0, "    ")
    stub = stub_lines(block, "t1")
    assert all(line.startswith("    ") for line in stub)
    text = "\n".join(stub)
    assert "#   total" in text and "scale * sum(xs)" in text  # the name used after the block, its docstring note
    assert stub[-2].strip() == 'raise NotImplementedError("t1 · scaled_sum")'
    assert "for x in xs" not in text


def test_build_grade_zero_then_full_points(repo, tmp_path, capsys):
    out = tmp_path / "student"
    assert course("build", "t1", "--out", str(out), "--root", str(repo)) == 0
    toy = (out / "minirl/toy.py").read_text()
    assert "NotImplementedError" in toy and "total += x" not in toy and "BEGIN SOLUTION" not in toy
    assert not (out / "tests").exists() and not (out / "course").exists()
    assert "Because" not in (out / "assignment/QUESTIONS.md").read_text()
    capsys.readouterr()
    assert course("grade", str(out), "--root", str(repo)) == 0
    text = capsys.readouterr().out
    assert "t1: 0/3 points" in text
    assert text.count("not implemented: t1 · scaled_sum") == 2 and "Traceback" not in text
    results = json.loads((out / "results.json").read_text())
    assert results["score"] == 0 and {t["visibility"] for t in results["tests"]} == {"visible", "after_published"}
    # paste the reference back between the student markers: full points
    solved = toy.replace('        raise NotImplementedError("t1 · scaled_sum")\n', "")
    solved = solved.replace('    raise NotImplementedError("t1 · scaled_sum")\n',
                            "    total = scale * sum(xs)\n")
    (out / "minirl/toy.py").write_text(solved)
    assert course("grade", str(out), "--root", str(repo)) == 0
    assert "t1: 3/3 points" in capsys.readouterr().out


def test_grade_refuses_an_edit_outside_the_student_region_with_file_and_line(repo, tmp_path, capsys):
    out = tmp_path / "student"
    assert course("build", "t1", "--out", str(out), "--root", str(repo)) == 0
    path = out / "minirl/toy.py"
    text = path.read_text()
    line = text[: text.index("scale < 0")].count("\n") + 1  # the validation line, outside the region
    path.write_text(text.replace("scale < 0", "scale < -1"))
    capsys.readouterr()
    assert course("grade", str(out), "--root", str(repo)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"minirl/toy.py:{line}: changed outside the student regions" in err
    assert not (out / "results.json").exists()


def test_grade_refuses_a_new_conftest(repo, tmp_path, capsys):
    out = tmp_path / "student"
    assert course("build", "t1", "--out", str(out), "--root", str(repo)) == 0
    (out / "minirl" / "conftest.py").write_text("")
    assert course("grade", str(out), "--root", str(repo)) == 2
    assert "minirl/conftest.py: new file" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["build", "t9", "--out", "{out}"], "id: no assignment 't9'"),
    (["grade", "{tmp}"], "is not a student tree built by 'minirl course build'"),
])
def test_bad_input_is_one_line_and_writes_nothing(repo, tmp_path, capsys, args, message):
    out = tmp_path / "never"
    args = [a.format(out=out, tmp=tmp_path) for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert course(*args, "--root", str(repo)) == 2
    err = capsys.readouterr().err
    assert err.startswith("minirl: error: ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_build_refuses_a_non_empty_folder_and_a_missing_block(repo, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert course("build", "t1", "--out", str(busy), "--root", str(repo)) == 2
    assert "out: " in capsys.readouterr().err and (busy / "notes.txt").read_text() == "mine"
    manifest = repo / "course/manifest.toml"
    manifest.write_text(MANIFEST.replace('function = "scaled_sum"', 'function = "scaled_mean"'))
    assert course("build", "t1", "--out", str(tmp_path / "new"), "--root", str(repo)) == 2
    err = capsys.readouterr().err
    assert "blocks: t1 names minirl/toy.py::scaled_mean" in err and not (tmp_path / "new").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".new")]  # no temporary left behind


def test_force_replaces_only_a_student_tree(repo, tmp_path, capsys):
    out = tmp_path / "student"
    assert course("build", "t1", "--out", str(out), "--root", str(repo)) == 0
    assert course("build", "t1", "--out", str(out), "--root", str(repo)) == 2
    assert "--force" in capsys.readouterr().err
    assert course("build", "t1", "--out", str(out), "--root", str(repo), "--force") == 0
    assert (out / ".course/build.json").is_file()


def test_the_real_manifest_names_blocks_that_exist():
    real = load_course(find_root())
    assert len(real.assignments) >= 7
    for a in real.assignments:
        assert len(real.locate(a)) == len(a.blocks)
        assert len(real.mutants(a)) >= 2
