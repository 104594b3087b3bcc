"""Safe outputs: the library writes only where it was asked to, never over what it did not write, and
never leaves half a file behind.

The rules every command follows (``minirl`` and ``llmtrack`` alike):

1. **Check before work.** :func:`check_output_dir` proves that a folder exists and takes a file, or
   can be created, *before* a run starts -- by doing it (a probe file, or the folders made and removed
   again), because permission bits do not tell (root "may write" to ``/proc``). A bad ``--out`` costs
   a second, not a finished run.
2. **Never overwrite what is not ours.** Everything we write carries a mark: a figure's PNG metadata
   says ``Software: minirl`` (:func:`save_figure`), a model folder holds ``llmtrack_model.json`` listing
   its files (``llmtrack.models``). A file of the same name without our mark is refused unless the caller
   passes ``force=True`` (the commands' ``--force``).
3. **Atomic writes.** A file is written to a temporary sibling and renamed into place (``os.replace`` is
   atomic on one file system), so readers see the old file or the new one, never half of one.
   Temporaries are named ``.<name>.tmp-<pid>-<random>``: a run killed with SIGKILL leaves one behind,
   and the next run that writes there removes those whose process is gone
   (:func:`remove_stale_temporaries`).
4. **Say what was written.** :data:`WRITTEN` lists every completed output of this process, so an
   interrupted command can end with one line saying which outputs are complete (:func:`interrupted_message`).

Also here: :func:`strict_json`, because a command's ``--json`` must be standard JSON (no bare ``NaN``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["WRITTEN", "MARK", "check_output_dir", "check_output_file", "is_our_figure", "save_figure",
           "temporary_sibling", "remove_stale_temporaries", "atomic_file", "atomic_write_text", "strict_json",
           "interrupted_message"]

MARK = "minirl"
"""The PNG ``Software`` text chunk of every figure we write."""
WRITTEN: list[Path] = []
"""Outputs this process has completed (appended after each atomic rename)."""


def check_output_dir(path: str | os.PathLike, field: str = "out") -> Path:
    """Refuse, before any work, a folder that cannot receive our files; returns it as a Path.

    An existing path must be a directory in which a file can be created (a probe file is made and
    removed). A missing one must be creatable: the missing folders are made and removed again, so the
    check leaves the disk as it found it. Raises a ValueError naming ``field``.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{field}: {str(path)!r} is a file, not a folder")
    if path.is_dir():
        try:
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=path)
            os.close(fd)
            os.remove(probe)
        except OSError as err:
            raise ValueError(f"{field}: cannot write in {str(path)!r} ({err.strerror or err})") from None
        return path
    missing = []
    parent = path
    while not parent.exists():
        missing.append(parent)
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{field}: cannot create {str(path)!r}: {str(parent)!r} is a file, not a folder")
    made = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            made.append(folder)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise ValueError(f"{field}: cannot create {str(path)!r} ({err.strerror or err})") from None
    finally:
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:
                pass
    return path


def is_our_figure(path: str | os.PathLike) -> bool:
    """True if ``path`` is a PNG whose metadata says we wrote it (:func:`save_figure`)."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return str(image.info.get("Software", "")).startswith(MARK)
    except Exception:  # not an image, unreadable, truncated: not ours
        return False


def check_output_file(path: str | os.PathLike, field: str = "out", force: bool = False) -> Path:
    """Refuse, before any work, to replace ``path`` unless it is missing, one of our figures, or ``force``."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{field}: {str(path)!r} is a folder; a file of that name is needed there")
    if path.exists() and not force and not is_our_figure(path):
        raise ValueError(f"{field}: {str(path)!r} exists and was not written by {MARK}; move it, choose another "
                         "folder, or pass --force to replace it")
    return path


def temporary_sibling(path: Path, directory: bool = False) -> Path:
    """A new temporary file or folder beside ``path``: ``.<name>.tmp-<pid>-<random>``."""
    prefix = f".{path.name}.tmp-{os.getpid()}-"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(fd)
    return Path(name)


_TMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporaries (:func:`temporary_sibling`) in ``folder`` whose process has ended.

    Only entries named by our pattern are touched, and only when the process that made them is gone
    (a crash or SIGKILL); ``name`` restricts the clean-up to one target's temporaries. Returns what was removed.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TMP.match(entry.name)
        if match is None or (name is not None and match["name"] != name) or _alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Write a file all at once or not at all: yields a temporary sibling to write, then renames it
    onto ``path`` (readable by everyone: mkstemp makes it private) and records it in ``WRITTEN``; on
    an error or an interruption the temporary is removed and ``path`` is untouched."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    WRITTEN.append(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary sibling and a rename."""
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return path


def save_figure(fig: Any, path: str | os.PathLike, force: bool = False) -> Path:
    """Write a matplotlib figure as a PNG atomically, marked as ours in its metadata.

    The folder is created if missing; an existing file that is not one of our figures is refused unless
    ``force`` (:func:`check_output_file`). Returns the path.
    """
    path = Path(path)
    check_output_file(path, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png", metadata={"Software": f"{MARK} (learning from behaviour)"})
    return path


def strict_json(obj: Any) -> str:
    """``json.dumps`` that only ever writes standard JSON: NaN and +-inf become null, and their places are
    listed under the top-level key ``"non_finite"`` with a note (bare ``NaN`` is refused by strict parsers)."""
    places: list[str] = []

    def clean(x: Any, where: str) -> Any:
        if isinstance(x, dict):
            return {str(k): clean(v, f"{where}.{k}" if where else str(k)) for k, v in x.items()}
        if hasattr(x, "_asdict"):  # NamedTuple
            return clean(x._asdict(), where)
        if isinstance(x, (list, tuple)):
            return [clean(v, f"{where}[{i}]") for i, v in enumerate(x)]
        if hasattr(x, "tolist") and not isinstance(x, (str, bytes)):  # numpy / torch scalars and arrays
            return clean(x.tolist(), where)
        if isinstance(x, float) and not math.isfinite(x):
            places.append(where)
            return None
        if isinstance(x, Path):
            return str(x)
        return x

    out = clean(obj, "")
    if places and isinstance(out, dict):
        out["non_finite"] = {"note": "these values were NaN or infinite and are written as null", "at": places}
    return json.dumps(out, allow_nan=False)


def interrupted_message(program: str) -> str:
    """The one line an interrupted command prints: what of its output is complete, if anything."""
    if not WRITTEN:
        return f"{program}: interrupted; nothing was written"
    done = ", ".join(str(p) for p in dict.fromkeys(WRITTEN))
    return f"{program}: interrupted; these outputs are complete: {done}"
