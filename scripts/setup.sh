#!/usr/bin/env bash
# Create .venv: the pinned CPU build of torch first (an unpinned torch pulls several GB of CUDA wheels),
# then textclf in editable mode with its test tools. Safe to re-run.
#   PYTHON=python3.11 bash scripts/setup.sh          # choose the interpreter
#   TORCH_SPEC="torch==2.13.0" TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2> >(grep -v '^WARNING: Location' >&2); }
pip install --upgrade pip
# shellcheck disable=SC2086
pip install ${TORCH_PIP_ARGS:-} "${TORCH_SPEC:-torch==2.13.0}"
pip install -e ".[dev]"
echo "setup: $(.venv/bin/python -c 'import torch, transformers, datasets; print(f"torch {torch.__version__}, transformers {transformers.__version__}, datasets {datasets.__version__}")')" >&2
