"""What the ``minirl`` and ``llmtrack`` commands share: options checked by :mod:`minirl.checks` as they are
parsed, and one way to end (an error, an interruption, a result).

* **Options** (``seed_option``, ``count_option``, ``device_option``, ``threads_option``, ``number_option``)
  are argparse ``type=`` functions. A bad value is refused while the command line is read -- before any
  import of torch, before any work -- and argparse's message names the option:
  ``llmtrack: error: --seed: must be an integer in [0, 2**32), got -1 (see: llmtrack sft --help)``
  (:class:`CommandParser` raises instead of exiting, so the option's message ends like a config's).
* **Ending** (:func:`run`): a ValueError while the run is prepared (configs built, outputs checked) is one line ``<program>: error: <field>: <rule>`` and
  status 2; Ctrl-C (SIGINT) or SIGTERM is one line saying what output is complete
  (:func:`minirl.outputs.interrupted_message`) and status 130 (143 for SIGTERM) -- never a traceback.
  SIGTERM is turned into an exception so the ``finally`` blocks that remove temporaries run.
* **Output**: ``--json`` prints standard JSON only (:func:`minirl.outputs.strict_json`) on stdout; progress
  bars go to stderr whenever stderr is a terminal, in every mode (:func:`progress_wanted`).
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
from typing import Any, Callable

from minirl import checks
from minirl.outputs import interrupted_message, strict_json

__all__ = ["CommandParser", "UsageError", "seed_option", "count_option", "device_option", "threads_option", "number_option", "progress_wanted",
           "print_json", "run", "Terminated"]


class UsageError(ValueError):
    """A command line argparse could not accept; its message is ``<option>: <rule>`` like a config's."""


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of exiting, so bad options end the same way
    as bad config fields (:func:`run`: one line ``<program>: error: --seed: <rule>``, status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        match = re.match(r"argument (--[\w-]+)(?:/[^:]*)?: (.*)", message, re.S)
        if match:
            message = f"{match[1]}: {match[2]}"
        raise UsageError(f"{message} (see: {self.prog} --help)")


def _option(check: Callable[[Any], Any], parse: Callable[[str], Any] = int) -> Callable[[str], Any]:
    """An argparse type: parse the text, then apply ``check``; its message loses the field prefix (argparse
    adds the option's name)."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            kind = "an integer" if parse is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}") from None
        try:
            return check(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).split(": ", 1)[-1]) from None

    return convert


def seed_option(text: str) -> int:
    """--seed: an integer in [0, 2**32)."""
    return _option(checks.check_seed)(text)


def count_option(minimum: int, maximum: int) -> Callable[[str], int]:
    """A count in [minimum, maximum] (every count has an upper bound, stated in --help)."""
    return _option(lambda v: checks.check_int(v, "count", minimum, maximum))


def number_option(minimum: float, maximum: float) -> Callable[[str], float]:
    """A finite number in [minimum, maximum]."""
    return _option(lambda v: checks.check_number(v, "number", minimum, maximum), float)


def threads_option(text: str) -> int:
    """--threads: 1 .. the CPU count."""
    return _option(checks.check_threads)(text)


def device_option(text: str) -> str:
    """--device: a device torch has here ("cpu", "cuda", "cuda:N", "mps", "auto"); the name is kept."""
    if text == "cpu":  # the default: no need to import torch to know the CPU is there
        return text
    _option(checks.check_device, str)(text)
    return text


def progress_wanted() -> bool:
    """Progress bars (tqdm, on stderr) when stderr is a terminal -- with --json too, whose stdout stays pure."""
    return sys.stderr.isatty()


def print_json(obj: Any) -> None:
    print(strict_json(obj))


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so its clean-up runs as for Ctrl-C."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def run(program: str, prepare: Callable[[], Any], work: Callable[[Any], int]) -> int:
    """Run a command: ``prepare()`` checks everything and returns what ``work`` needs; ``work(prepared)`` does
    the work. A ValueError from ``prepare`` is bad input (one line, status 2); one from ``work`` is a bug and
    keeps its traceback. An interruption anywhere is one line and status 130 (143 for SIGTERM)."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        try:
            prepared = prepare()
        except ValueError as err:  # configs and checks refuse bad input with "<field>: <rule>"
            print(f"{program}: error: {err}", file=sys.stderr)
            return 2
        return work(prepared)
    except KeyboardInterrupt as interrupt:
        print(f"\n{interrupted_message(program)}", file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
