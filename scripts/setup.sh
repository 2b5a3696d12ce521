#!/usr/bin/env bash
# Creates .venv with every pinned dependency. On a machine whose python3 already has a CUDA
# build of torch, the venv sees the system site-packages and keeps that torch.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "setup: keeping the system's CUDA torch ($(python3 -c 'import torch; print(torch.__version__)'))"
    python3 -m venv --system-site-packages "$VENV"
    touch "$VENV/.keep-system-torch"
  else
    python3 -m venv "$VENV"
  fi
fi
reqs=requirements.txt cons=constraints.txt
if [ -f "$VENV/.keep-system-torch" ]; then
  # the system's torch stack (torch, its torchvision, CUDA wheels) replaces the pinned one
  stack='^(torch|torchvision|triton)==|^(nvidia|cuda)-'
  grep -Ev "$stack" requirements.txt > "$VENV/requirements.txt"; reqs="$VENV/requirements.txt"
  grep -Ev "$stack" constraints.txt > "$VENV/constraints.txt"; cons="$VENV/constraints.txt"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs" -c "$cons"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e .
echo "setup: $VENV ready ($("$VENV/bin/jstyleid" --version))"
