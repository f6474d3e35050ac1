#!/usr/bin/env bash
# The command sequence of docs/averaging.md: from a tomogram to a ribosome average with the CLI only.
# Train a ribosome network on tomo_s11 (10 positive + 100 negative tiles chosen from its labels), apply it
# to tomo_s12, pick, extract, classify in 2D, average.   Usage: benchmarks/averaging_cli.sh [OUT] [DATA]
set -euo pipefail
OUT=${1:-/tmp/tomoseg-averaging}
DATA=${2:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
PY=${PYTHON:-python}
mkdir -p "$OUT" && cd "$OUT"
$PY - "$DATA" <<'PY'
import sys, numpy as np, pandas as pd
from tomoseg.io.mrc import read_volume
from tomoseg.steps.trainset import choose_boxes
labels = read_volume(f"{sys.argv[1]}/sim/tomo_s11_labels.mrc", mmap=False).data.view(np.uint8)
boxes = choose_boxes(labels, 4, 10, 100, seed=4)
pd.DataFrame([(b.x, b.y, b.z, "positive" if b.positive else "negative") for b in boxes],
             columns=["x", "y", "z", "kind"]).to_csv("boxes.csv", index=False)
PY
time tomoseg preprocess "$DATA/sim/tomo_s11_tomo.mrc" -o s11_pre.mrc -q
time tomoseg preprocess "$DATA/sim/tomo_s12_tomo.mrc" -o s12_pre.mrc -q
time tomoseg trainset s11_pre.mrc --boxes boxes.csv --labels "$DATA/sim/tomo_s11_labels.mrc" --value 4 --name ribosome -o ribosome.set -q
time tomoseg train ribosome.set -o ribosome.model -q
time tomoseg apply ribosome.model s12_pre.mrc -o s12_ribosome.mrc -q
time tomoseg pick s12_ribosome.mrc -o ribosomes.star
time tomoseg extract "$DATA/sim/tomo_s12_tomo.mrc" ribosomes.star -o subtomograms --box 40 --invert --force -q
time tomoseg classify2d subtomograms/particles.star -o classes --classes 3 --force
time tomoseg average subtomograms/particles.star -o average --force
cat average/summary.json | head -8
