#!/usr/bin/env bash
# The result the README's "Instability" section quotes: config/examples/instability.yaml
# run from an empty directory, its summary.csv, attribution.csv and environment record
# kept in benchmarks/results/instability/ (tests/test_results_doc.py holds the README to
# them). About a minute on 2 cores. (benchmarks/instability.py draws the map around it.)
exec "$(dirname "$0")/example_result.sh" config/examples/instability.yaml benchmarks/results/instability
