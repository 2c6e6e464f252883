#!/usr/bin/env bash
# The result the README's "Instability" section quotes: config/examples/instability.yaml
# run from an empty directory, its summary.csv and attribution.csv kept in
# benchmarks/results/instability/ (tests/test_results_doc.py holds the README to them).
# About a minute on 2 cores. (benchmarks/instability.py draws the map around it.)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=benchmarks/results/instability
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && env -u MLFLOW_TRACKING_URI snakemake --snakefile "$repo/Snakefile" --cores 2 \
    --configfile "$repo/config/examples/instability.yaml" --quiet)
mkdir -p "$out"
cp "$scratch/results/compare/summary.csv" "$scratch/results/compare/attribution.csv" "$out/"
