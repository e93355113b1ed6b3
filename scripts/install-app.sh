#!/bin/sh
# Installs tensafe-ops into a virtualenv from the committed, hash-checked locks (`make lock`).
# The image's builder stage runs it, and so does tests/test_image.py on this machine.
#
#   install-app.sh deps VENV       a new VENV holding requirements.txt (wheels only, hashes required)
#   install-app.sh app SRC VENV    the project at SRC built into a wheel by the locked build
#                                  backend (requirements-build.txt), installed into VENV --no-deps
#
# PYTHON picks the interpreter (default python3). pip's cache is used unless PIP_NO_CACHE_DIR=1.
set -eu

python=${PYTHON:-python3}
step=${1:?usage: install-app.sh deps VENV | app SRC VENV}

case "$step" in
deps)
    venv=${2:?VENV}
    here=$(cd "$(dirname "$0")/.." && pwd)
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --require-hashes --only-binary=:all: --no-deps \
        -r "$here/requirements.txt"
    "$venv/bin/python" -m pip check
    ;;
app)
    src=${2:?SRC}
    venv=${3:?VENV}
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$python" -m venv "$work/build"
    "$work/build/bin/python" -m pip install --quiet --require-hashes --only-binary=:all: --no-deps \
        -r "$src/requirements-build.txt"
    "$work/build/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation \
        --wheel-dir "$work/wheels" "$src"
    "$venv/bin/python" -m pip install --quiet --no-deps --no-index "$work"/wheels/*.whl
    "$venv/bin/python" -m pip check
    ;;
*)
    echo "unknown step $step (deps or app)" >&2
    exit 2
    ;;
esac
