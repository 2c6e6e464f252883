#!/usr/bin/env bash
# The ablation the README's "Which source matters" table quotes: config/examples/ablation.yaml
# run from an empty directory, its summary.csv, attribution.csv and environment record kept
# in benchmarks/results/ablation/ (tests/test_results_doc.py holds the README's table to
# them). About 2 minutes on 2 cores.
exec "$(dirname "$0")/example_result.sh" config/examples/ablation.yaml benchmarks/results/ablation
