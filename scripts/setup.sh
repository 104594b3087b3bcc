#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install minirl + llmtrack with everything the
# demos, notebooks and tests need. Idempotent: a second run installs nothing new.
#
#   VENV=path   where the environment lives (default: .venv in the repository)
#
# torch: if the environment already imports torch (say a CUDA build you installed), it is
# kept -- pyproject asks for a range, not a pin. Otherwise torch==2.13.0 is installed; on
# this project's CI machines that is a CPU wheel found on local disk (an unpinned torch
# would pull a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
# A second run with the same pyproject.toml touches nothing: the stamp records what was installed,
# and the packages must still import. (So a second setup can run while tests use the environment.)
STAMP="$VENV/.minirl-setup"
WANT="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
        && "$VENV/bin/python" -c "import torch, minirl, llmtrack, nbval, mkdocs" 2>/dev/null; then
    :
else
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>/dev/null || true
    if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
    fi
    "$VENV/bin/python" -m pip install --quiet -e ".[dev]"
    echo "$WANT" > "$STAMP"
fi
echo "setup: $("$VENV/bin/python" -c 'import torch, gymnasium; print(f"torch {torch.__version__}, gymnasium {gymnasium.__version__}")') in $VENV"
