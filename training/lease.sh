#!/usr/bin/env bash
# The ChairV2 recipe on a borrowed GPU machine, in one command, from the training kit (python -m training.kit):
# nothing is read beside the code and the kit. Results land in $OUT as each stage finishes (packed checkpoints of
# at most 15 MiB, reports.tar.gz, lease.log), so a run stopped at its time limit still hands back what it made.
#
#   KIT=.kit OUT=/path/out DEADLINE_S=540 bash training/lease.sh [extra training.recipe flags]
#
# KIT: the kit folder (default .kit); OUT: where results go (required); DEADLINE_S: wall-clock for the recipe
# (default 540: a 10-minute command with a minute to spare); RECIPE_OUT: the run folder (default /tmp/recipe).
set -euo pipefail
KIT=$(cd "${KIT:-.kit}" && pwd)
: "${OUT:?set OUT to the folder that receives the results}"
[ -f "$KIT/kit.json" ] || { echo "no kit.json in $KIT: build it with python -m training.kit" >&2; exit 2; }
mkdir -p "$OUT"
export PYTHONPATH="$KIT/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
    SKETCHDOWN_DATA="$KIT/data" SKETCHDOWN_WEIGHTS_DIR="$KIT/weights" SKETCHDOWN_INITS="$KIT/inits" \
    SKETCHDOWN_CACHE="${SKETCHDOWN_CACHE:-/tmp/sketchdown-cache}"
PY=${PYTHON:-python3}
{
    echo "lease: $(date -u +%FT%TZ) $(uname -n) git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
} 2>&1 | tee "$OUT/lease.log"
"$PY" -m training.recipe --out "${RECIPE_OUT:-/tmp/recipe}" --deadline-s "${DEADLINE_S:-540}" --artifacts "$OUT" "$@" \
    2>&1 | tee -a "$OUT/lease.log"
