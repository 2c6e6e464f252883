#!/usr/bin/env bash
# Run one shipped example grid from an empty directory and keep what the docs quote:
#   benchmarks/example_result.sh CONFIG OUT
# copies its summary.csv and attribution.csv to OUT, with environment.json (the commit,
# the machine and software, and the effective library state of its first run).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
config=$1
out=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && env -u MLFLOW_TRACKING_URI snakemake --snakefile "$repo/Snakefile" --cores 2 \
    --configfile "$repo/$config" --quiet)
mkdir -p "$out"
cp "$scratch/results/compare/summary.csv" "$scratch/results/compare/attribution.csv" "$out/"
first=$(find "$scratch/results/runs" -name train.json | sort | head -1)
python - "$first" "$(git rev-parse --short HEAD)" > "$out/environment.json" <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
print(json.dumps({"commit": sys.argv[2], "run": record["run_key"], "env": record["env"],
                  "library": record["library_effective"]}, indent=1))
PY
