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
# Jittor compiles its core on its first import (1.5-3.5 min on 2 cores): an install step, paid here once
# per checkout instead of by the first test that imports it. Same cache folder as the Makefile's.
export JITTOR_HOME=${JITTOR_HOME:-$PWD/.cache/jittor-home}
mkdir -p "$JITTOR_HOME"
log="$VENV/jittor-compile.log"
"$VENV/bin/python" -c 'from jstyleid.engines.jittor import import_jittor; import_jittor()' >"$log" 2>&1 \
  || { tail -n 30 "$log" >&2; echo "setup: compiling Jittor's core failed (whole log: $log)" >&2; exit 1; }
echo "setup: Jittor's core compiled into $JITTOR_HOME"
echo "setup: $VENV ready ($("$VENV/bin/jstyleid" --version))"
