"""Bad input at the command line, and the file-safety rules (minirl.outputs, minirl.command).

Each refusal is checked three ways: the exit status (2), a one-line message naming the option or field,
and that nothing was written (the figure folder, the model folder, the cache). The file-safety cases
check that nothing the program did not write is deleted or overwritten, and that interrupted saves
leave nothing behind that the next run does not clean up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmtrack.cli import main as llmtrack_main
from llmtrack.models import MODEL_MARK, build_model, load_model, model_folder_state, save_model
from minirl.cli import main as minirl_main
from minirl.command import run
from minirl.outputs import (WRITTEN, check_output_dir, is_our_figure, remove_stale_temporaries, save_figure,
                            strict_json)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("LLMTRACK_CACHE", str(path))
    return path


@pytest.fixture
def user_files(tmp_path):
    """A folder of the user's, a file of the user's: neither may ever change."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "important.txt").write_text("keep me")
    file = tmp_path / "notes.txt"
    file.write_text("keep me too")
    return folder, file


def _unchanged(folder: Path, file: Path) -> bool:
    return (sorted(p.name for p in folder.iterdir()) == ["important.txt"]
            and (folder / "important.txt").read_text() == "keep me" and file.read_text() == "keep me too")


def _refused(main, argv, option, capsys) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and f"error: {option}:" in lines[0], captured.err
    return lines[0]


# -- llmtrack: refused before any work -------------------------------------------------------------------

LLMTRACK_CASES = [
    (["sft", "--task", "sort", "--out", "{folder}"], "out"),           # a user's non-empty folder
    (["sft", "--task", "sort", "--out", "{file}"], "out"),             # a user's file
    (["sft", "--task", "sort", "--out", "/proc/x"], "out"),            # cannot be created
    (["sft", "--task", "sort", "--out", "{file}/sub"], "out"),         # under a file
    (["demo", "classification-vs-bt", "--out", "/proc/x"], "out"),
    (["demo", "reward-noise", "--out", "{file}"], "out"),
    (["dpo", "--task", "markov", "--out", "/proc/x"], "out"),
    (["sft", "--task", "sort", "--device", "tpu"], "--device"),
    (["sft", "--task", "sort", "--device", "cuda:99"], "--device"),
    (["grpo", "--task", "markov", "--device", "foo"], "--device"),
    (["sft", "--task", "sort", "--device", "cpu:1"], "--device"),
    (["sft", "--task", "sort", "--seed", "-1"], "--seed"),
    (["sft", "--task", "sort", "--seed", str(2**64)], "--seed"),
    (["sft", "--task", "sort", "--seed", "1.5"], "--seed"),
    (["demo", "exposure-bias", "--seed", str(2**32)], "--seed"),
    (["demo", "classification-vs-bt", "--seeds", "100000"], "--seeds"),
    (["demo", "reward-noise", "--seeds", "0"], "--seeds"),
    (["sft", "--task", "sort", "--threads", "100000"], "--threads"),
    (["sft", "--task", "sort", "--threads", "0"], "--threads"),
    (["pipeline", "--task", "markov", "--noise", "0.7"], "--noise"),
    (["pipeline", "--task", "markov", "--noise", "nan"], "--noise"),
    (["sft", "--task", "sort", "--checkpoint", "{file}"], "checkpoint"),
    (["sft", "--task", "sort", "--checkpoint", "{folder}"], "checkpoint"),
]
if not torch.cuda.is_available():
    LLMTRACK_CASES += [(["sft", "--task", "sort", "--device", "cuda"], "--device"),
                       (["afd", "--task", "markov", "--device", "cuda"], "--device")]


@pytest.mark.parametrize("argv, option", LLMTRACK_CASES)
def test_llmtrack_refuses_before_any_work(argv, option, user_files, cache, capsys):
    folder, file = user_files
    argv = [a.replace("{folder}", str(folder)).replace("{file}", str(file)) for a in argv]
    _refused(llmtrack_main, argv, option, capsys)
    assert _unchanged(folder, file)
    assert not cache.exists()  # nothing was pre-trained
    assert not Path("/proc/x").exists()


def test_an_unwritable_cache_is_refused_before_any_work(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("LLMTRACK_CACHE", "/proc/x")
    _refused(llmtrack_main, ["sft", "--task", "sort"], "LLMTRACK_CACHE", capsys)
    _refused(llmtrack_main, ["demo", "reward-noise", "--fast", "--out", str(tmp_path)], "LLMTRACK_CACHE", capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_checkpoint_is_refused_by_name(tmp_path, cache, capsys):
    from llmtrack.tasks import SortTask

    path = save_model(build_model("nano", SortTask().vocab_size), tmp_path / "lm")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated: the header promises more than is there
    capsys.readouterr()  # transformers' own save bar
    line = _refused(llmtrack_main, ["sft", "--task", "sort", "--checkpoint", str(path)], "checkpoint", capsys)
    assert "safetensors" in line
    with pytest.raises(ValueError, match="^checkpoint:"):
        load_model(path, field="checkpoint")


# -- minirl: refused before any work ---------------------------------------------------------------------

MINIRL_CASES = [
    (["demo", "f-divergence", "--out", "/proc/x"], "out"),
    (["demo", "f-divergence", "--out", "{file}"], "out"),
    (["demo", "compounding-error", "--seed", "-1"], "--seed"),
    (["demo", "compounding-error", "--seed", str(2**64)], "--seed"),
    (["demo", "imitate", "--seed", "-1"], "--seed"),
    (["demo", "compounding-error", "--seeds", "1000000"], "--seeds"),
    (["demo", "reward-transfer", "--seeds", "-3"], "--seeds"),
    (["demo", "imitate", "--demos", "100000"], "--demos"),
    (["demo", "imitate", "--demos", "0"], "--demos"),
    (["demo", "imitate", "--steps", "2.5"], "--steps"),
    (["demo", "imitate", "--algo", "gial"], "algo"),
    (["demo", "imitate", "--env", "Acrobot-v1"], "env"),
]


@pytest.mark.parametrize("argv, option", MINIRL_CASES)
def test_minirl_refuses_before_any_work(argv, option, user_files, capsys):
    folder, file = user_files
    argv = [a.replace("{folder}", str(folder)).replace("{file}", str(file)) for a in argv]
    _refused(minirl_main, [*argv, "--out", str(folder)] if "--out" not in argv else argv, option, capsys)
    assert _unchanged(folder, file)


def test_an_exact_demo_takes_no_seed(capsys):
    """f-divergence solves its game exactly: a --seed would be silently ignored, so it is not an option."""
    line = _refused(minirl_main, ["demo", "f-divergence", "--seed", "5"], "unrecognized arguments", capsys)
    assert "--seed" in line


def test_a_figure_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
    theirs = tmp_path / "f_divergence.png"
    theirs.write_bytes(b"someone's picture")
    _refused(minirl_main, ["demo", "f-divergence", "--out", str(tmp_path)], "out", capsys)
    assert theirs.read_bytes() == b"someone's picture"
    # --force replaces it; the result is ours, and a second run replaces ours without --force
    assert minirl_main(["demo", "f-divergence", "--out", str(tmp_path), "--json", "--force"]) == 0
    assert is_our_figure(theirs)
    out = json.loads(capsys.readouterr().out)  # --json: stdout is exactly one standard JSON object
    assert out["figure"] == str(theirs)
    assert minirl_main(["demo", "f-divergence", "--out", str(tmp_path), "--json"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f_divergence.png"]  # no temporaries left


# -- model folders ---------------------------------------------------------------------------------------

def test_a_model_is_saved_only_where_nothing_of_the_users_is_lost(tmp_path, user_files):
    folder, file = user_files
    model = build_model("nano", 17)
    with pytest.raises(ValueError, match="^out:.*non-empty folder"):
        save_model(model, folder)
    with pytest.raises(ValueError, match="^out:.*is a file"):
        save_model(model, file)
    assert _unchanged(folder, file)
    # a new folder, then the same folder again (ours: replaced), then --force into the user's folder
    ours = save_model(model, tmp_path / "new")
    assert model_folder_state(ours) == "ours"
    save_model(build_model("nano", 17, seed=1), ours)
    assert model_folder_state(ours) == "ours" and not any(p.name.startswith(".") for p in tmp_path.iterdir())
    save_model(model, folder, force=True)
    assert (folder / "important.txt").read_text() == "keep me" and (folder / "config.json").is_file()
    assert model_folder_state(folder) == "foreign"  # still holds the user's file: never "ours" to replace
    load_model(folder)
    # a model folder we saved into which the user put a file is no longer ours to replace
    (ours / "my_notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="^out:"):
        save_model(model, ours)
    assert (ours / "my_notes.txt").read_text() == "mine"


def test_an_interrupted_save_leaves_nothing_and_the_last_model_intact(tmp_path, monkeypatch):
    model = build_model("nano", 17)
    path = save_model(model, tmp_path / "lm")
    before = (path / "model.safetensors").read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(model), "save_pretrained", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_model(model, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lm"]
    assert (path / "model.safetensors").read_bytes() == before


def test_leftovers_of_a_killed_save_are_repaired_by_the_next(tmp_path):
    """SIGKILL leaves a temporary (its process gone) or, between the two renames, the old model moved aside."""
    model = build_model("nano", 17)
    path = save_model(model, tmp_path / "lm")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".lm.tmp-{dead}-abc"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    alive = tmp_path / f".lm.tmp-{os.getpid()}-xyz"  # a save in progress in a live process: left alone
    alive.mkdir()
    os.replace(path, tmp_path / ".lm.old")  # killed between "move the old aside" and "move the new in"
    save_model(model, tmp_path / "other")
    assert stale.exists()  # "other"'s save touched nothing of "lm"'s ...
    save_model(model, path)  # ... "lm"'s next save repairs: the old one back, then replaced; the stale one gone
    assert not stale.exists() and alive.exists() and not (tmp_path / ".lm.old").exists()
    assert model_folder_state(path) == "ours"
    assert remove_stale_temporaries(tmp_path) == []  # nothing stale remains; the live one is kept
    alive.rmdir()


def test_an_incomplete_cache_entry_is_trained_again(tmp_path, monkeypatch):
    """Older versions wrote the cache's description after the rename: weights without it are redone."""
    from minirl.algos.bc import BCConfig
    from llmtrack.pipelines.base import DESCRIPTION, base_checkpoint_path, pretrain_base
    from llmtrack.tasks import SortTask

    task, bc = SortTask(), BCConfig(n_updates=2, batch_size=8, lr=1e-3)
    path = base_checkpoint_path(task, n_sequences=16, bc=bc, cache_dir=tmp_path)
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")  # a crash left the weights' folder without its description
    (path / ".llmtrack_base.json.tmp").write_text("{")
    pretrain_base(task, n_sequences=16, bc=bc, cache_dir=tmp_path)
    assert (path / DESCRIPTION).is_file() and not (path / ".llmtrack_base.json.tmp").exists()
    assert model_folder_state(path) == "ours"


def test_llmtrack_sft_saves_next_to_nothing_it_did_not_write(tmp_path, cache, capsys, monkeypatch):
    """The probe's destructive case end to end: the user's folder survives; a new folder gets the model."""
    from llmtrack.pipelines import recipe

    small = {**recipe.TASK_TRAINING["sort"], "labelled_sequences": 20, "updates": 2, "pretrain_sequences": 32,
             "pretrain_updates": 2, "n_eval": 8}
    monkeypatch.setitem(recipe.TASK_TRAINING, "sort", small)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "important.txt").write_text("keep me")
    assert llmtrack_main(["sft", "--task", "sort", "--algo", "bc", "--out", str(folder), "--json"]) == 2
    assert not cache.exists()
    assert llmtrack_main(["sft", "--task", "sort", "--algo", "bc", "--out", str(tmp_path / "new"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["checkpoint_out"] == str(tmp_path / "new") and (tmp_path / "new" / MODEL_MARK).is_file()
    assert (folder / "important.txt").read_text() == "keep me"


# -- outputs, JSON and interruptions -----------------------------------------------------------------------

def test_output_checks_leave_the_disk_as_they_found_it(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    assert check_output_dir(target) == target
    assert list(tmp_path.iterdir()) == []  # the folders made for the probe were removed again


def test_strict_json_writes_null_for_nan_and_says_where():
    text = strict_json({"rows": [{"acc": float("nan")}, {"acc": 0.5}], "kl": float("inf"), "n": torch.tensor(3)})

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    out = json.loads(text, parse_constant=refuse)
    assert out["rows"][0]["acc"] is None and out["kl"] is None and out["n"] == 3
    assert out["non_finite"]["at"] == ["rows[0].acc", "kl"]


def test_ctrl_c_ends_with_one_line_and_status_130(capsys):
    WRITTEN.clear()

    def work(_):
        raise KeyboardInterrupt

    assert run("llmtrack", lambda: None, work) == 130
    assert capsys.readouterr().err.strip() == "llmtrack: interrupted; nothing was written"
    WRITTEN.append(Path("figures/x.png"))
    assert run("minirl", lambda: None, work) == 130
    assert capsys.readouterr().err.strip() == "minirl: interrupted; these outputs are complete: figures/x.png"
    WRITTEN.clear()


def test_sigterm_runs_the_clean_up_and_ends_with_one_line(tmp_path):
    """A real signal in a real process: the temporary of the save in progress is removed, one line, 143."""
    script = f"""
import os, signal, time
from pathlib import Path
from minirl.command import run
from minirl.outputs import temporary_sibling

def work(_):
    tmp = temporary_sibling(Path({str(tmp_path / 'model')!r}), directory=True)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
    finally:
        tmp.rmdir()
    return 0

raise SystemExit(run("llmtrack", lambda: None, work))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip() == "llmtrack: interrupted; nothing was written"
    assert list(tmp_path.iterdir()) == []


def test_save_figure_marks_its_files(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    path = save_figure(fig, tmp_path / "x.png")
    plt.close(fig)
    assert is_our_figure(path) and not is_our_figure(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="^out:.*not written by minirl"):
        (tmp_path / "y.png").write_bytes(b"\x89PNG not ours")
        save_figure(plt.figure(), tmp_path / "y.png")
