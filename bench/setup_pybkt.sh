#!/usr/bin/env bash
# Build the pyBKT 1.4.3 reference venv (bench/.pybkt-venv) with its C++ extension.
#
# Why from source: PyPI's pyBKT wheel is the pure-Python fallback (about 100x slower), and the
# C++ build needs numpy < 2 and scikit-learn < 1.6 already installed in the venv, hence
# --no-binary pyBKT --no-build-isolation. A build that silently falls back to pure Python would
# make every comparison meaningless, so the script fails unless the compiled E_step module exists.
# Idempotent: a venv that already has the extension is left alone.
set -euo pipefail

VENV="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.pybkt-venv"
PYTHON="${PYTHON:-python3}"

extension() {
    find "$VENV/lib" -path '*/site-packages/pyBKT/fit/E_step*.so' -print -quit 2>/dev/null
}

if [[ -n "$(extension)" ]]; then
    echo "pyBKT C++ build present: $(extension)" >&2
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet "numpy<2" "scikit-learn<1.6" pandas setuptools wheel
# a pyBKT without the extension (e.g. from the PyPI wheel) would satisfy pip and be kept
"${pip[@]}" uninstall --quiet --yes pyBKT 2>/dev/null || true
# --no-cache-dir: never reuse a cached wheel that may be a pure-Python fallback build
"${pip[@]}" install --quiet --no-cache-dir --no-binary pyBKT --no-build-isolation \
    pyBKT==1.4.3 "numpy<2" "scikit-learn<1.6"

if [[ -z "$(extension)" ]]; then
    echo "ERROR: pyBKT installed without its C++ extension (no pyBKT/fit/E_step*.so in $VENV)." >&2
    echo "       It would run the pure-Python fallback, ~100x slower; check the compiler" >&2
    echo "       (g++) and the Python headers, then rerun this script." >&2
    exit 1
fi
echo "pyBKT C++ build ready: $(extension)" >&2
