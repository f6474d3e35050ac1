#!/usr/bin/env bash
# tomoseg batch on 4 raw tomograms (the two simulated tomograms of ../shared, each twice under another name),
# with the demo's two models: one worker (every core per tomogram) against two local processes.
# Usage: bash benchmarks/batch.sh [WORKDIR]   (run from the repository root, nothing else running)
set -euo pipefail
work=${1:-/tmp/tomoseg-batch-bench}
tomoseg=${TOMOSEG:-.venv/bin/tomoseg}
mkdir -p "$work/raw"
[ -f "$work/demo/particle.model" ] || "$tomoseg" demo -o "$work/demo" -q
for i in 1 2 3 4; do
  ln -sf "$(realpath ../shared/data/sim)/tomo_s1$(( (i % 2) + 1 ))_tomo.mrc" "$work/raw/t$i.mrc"
done
for w in 1 2; do
  rm -rf "$work/out$w"
  /usr/bin/time -f "workers $w: %e s wall, %M KiB peak RSS of the largest process" \
    "$tomoseg" batch "$work"/raw/t*.mrc -m "$work/demo/membrane.model" "$work/demo/particle.model" \
    -o "$work/out$w" --preprocess --pick membrane:membrane -q --workers "$w"
  cut -d, -f1-3 "$work/out$w/batch.csv"
done
# A Dask distributed cluster on this machine (scheduler + one worker process, one task at a time),
# when the 'distributed' package is installed (pip install -e ".[cluster]").
dask=$(dirname "$tomoseg")/dask
if [ -x "$dask" ]; then
  "$dask" scheduler --port 8799 --no-dashboard > "$work/scheduler.log" 2>&1 & sched=$!
  sleep 4
  "$dask" worker tcp://127.0.0.1:8799 --nthreads 1 --no-dashboard > "$work/worker.log" 2>&1 & wrk=$!
  sleep 6
  rm -rf "$work/outc"
  /usr/bin/time -f "cluster (1 worker): %e s wall" \
    "$tomoseg" batch "$work"/raw/t*.mrc -m "$work/demo/membrane.model" "$work/demo/particle.model" \
    -o "$work/outc" --preprocess --pick membrane:membrane -q --scheduler tcp://127.0.0.1:8799
  cut -d, -f1-3 "$work/outc/batch.csv"
  kill "$wrk" "$sched"
fi
