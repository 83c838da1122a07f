#!/usr/bin/env bash
# Build the catsim reference venv (bench/.catsim-venv) for bench/placement_bench.py.
#
# catsim (Meneghetti & Aquino, the Python CAT simulator) is the benchmark's reference only: the
# project never imports it, so it lives in its own venv like pyBKT does. Pinned so that a
# re-run measures the same code. Idempotent: a venv that already has this catsim is left alone.
set -euo pipefail

VENV="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.catsim-venv"
PYTHON="${PYTHON:-python3}"
VERSION="0.21.0"

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c \
    "import catsim, importlib.metadata as m; assert m.version('catsim') == '$VERSION'" 2>/dev/null; then
    echo "catsim $VERSION present in $VENV" >&2
    exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip --disable-pip-version-check install --quiet "catsim==$VERSION"
echo "catsim $VERSION ready in $VENV" >&2
