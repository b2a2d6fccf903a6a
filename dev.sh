#!/usr/bin/env bash
# One entry point for setting up and running conserve_verified.
#
#   bash dev.sh main   # set up .venv, verify every theorem, smoke-run the experiments, report
#   bash dev.sh test   # set up .venv, lint, type-check, run the whole test suite
#
# Setup is idempotent: the virtual environment in .venv is rebuilt only when
# pyproject.toml or constraints.txt change (a stamp file records their hash).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV="${VENV:-.venv}"
STAMP="$VENV/.conserve-verified-stamp"

setup() {
    local want
    want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
        return 0
    fi
    local t0=$SECONDS
    echo "[dev.sh] creating $VENV (one-time; reused afterwards)" >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # torch first, pinned: on this project's machines 2.13.0 resolves to the CPU build.
    "$VENV/bin/python" -m pip install --quiet -c constraints.txt "torch==2.13.0"
    "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[all]"
    echo "$want" >"$STAMP"
    echo "[dev.sh] environment ready in $((SECONDS - t0)) s, $(du -sh "$VENV" | cut -f1) on disk" >&2
}

# The optional native kernel of the one-pass forward: built once per machine (about a
# minute; kept in ~/.cache/conserve_verified), a no-op afterwards.  Without a C++
# compiler the operator uses torch's kernels, with the same proved tolerances.
native() {
    conserve-verified build-native || echo "[dev.sh] continuing with torch's kernels" >&2
}

export PATH="$PWD/$VENV/bin:$PATH"
# Keep BLAS/OpenMP from oversubscribing small machines.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

case "${1:-}" in
    setup)
        setup
        native
        ;;
    main)
        setup
        native
        conserve-verified verify --json results/certificate.json
        conserve-verified run all --profile quick --seeds 3 --out results
        conserve-verified report --out results
        ;;
    test)
        setup
        native
        export CONSERVE_CHECKS=raise
        export CONSERVE_HYPOTHESIS_PROFILE="${CONSERVE_HYPOTHESIS_PROFILE:-ci}"
        ruff check .
        ruff format --check .
        mypy
        pytest
        ;;
    *)
        echo "usage: bash dev.sh {main|test|setup}" >&2
        exit 2
        ;;
esac
