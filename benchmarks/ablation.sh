#!/usr/bin/env bash
# The ablation the README's "Which source matters" table quotes: config/examples/ablation.yaml
# run from an empty directory, its summary.csv and attribution.csv and the machine's
# environment record kept in benchmarks/results/ablation/ (tests/test_results_doc.py holds
# the README's table to them). About 2 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=benchmarks/results/ablation
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && env -u MLFLOW_TRACKING_URI snakemake --snakefile "$repo/Snakefile" --cores 2 \
    --configfile "$repo/config/examples/ablation.yaml" --quiet)
mkdir -p "$out"
cp "$scratch/results/compare/summary.csv" "$scratch/results/compare/attribution.csv" "$out/"
python - "$scratch/results/runs/control/t1/r1/train.json" "$(git rev-parse --short HEAD)" > "$out/environment.json" <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
print(json.dumps({"commit": sys.argv[2], "env": record["env"], "library": record["library_effective"]}, indent=1))
PY
