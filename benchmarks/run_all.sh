#!/usr/bin/env bash
# Every figure in benchmarks/RESULTS.md and the README, measured side by side in one run
# (about an hour on 2 cores), or the sections named:
#   benchmarks/run_all.sh [small medium medium-20 own_loop tax_split loop_split execute_scale
#                          scale audit_scale diverge checkpoint watch ablation instability]
# Writes one JSON document per section into benchmarks/results/, each with the commit it
# measured ("+changes": the code differed from that commit), the machine into
# machine.json, then RESULTS.md.
# Run from the repository root with the project's environment active, on an otherwise
# idle machine, with a clean working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
mkdir -p "$out"
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- reprogrid Snakefile benchmarks/*.py || echo "+changes")
export COMMIT="$commit"
# the CPU and torch's SIMD path: machines of one kind differ (AMD EPYC with AVX2, Intel Xeon with AVX-512)
CPU=$(python -c 'import torch; from reprogrid.record.environment import cpu_model; print(f"{cpu_model()}, {torch.backends.cpu.get_cpu_capability()}")')
export CPU
# Python caches the bytecode of the modules it compiles, unless told not to; a machine that
# says so (PYTHONDONTWRITEBYTECODE) compiles reprogrid's modules anew in every process (a
# job's client starts about 0.09 s slower, seen here), which no default installation pays. Measured as Python
# comes: with the cache.
unset PYTHONDONTWRITEBYTECODE

# stamped NAME COMMAND...: COMMAND's JSON document, with the commit measured, saved under NAME
stamped() {
    local name=$1
    shift
    "$@" | python -c 'import json, os, sys; print(json.dumps(json.load(sys.stdin) | {"commit": os.environ["COMMIT"], "cpu": os.environ["CPU"]}, indent=1))' \
        >"$out/$name.json.partial"
    mv "$out/$name.json.partial" "$out/$name.json"
}

for section in ${*:-small medium medium-20 own_loop tax_split loop_split execute_scale scale audit_scale diverge checkpoint watch ablation instability}; do
    case $section in
    small) stamped small python benchmarks/overhead.py small --cores 2 ;;
    medium) stamped medium python benchmarks/overhead.py medium --cores 2 --workflow-cores 2 1 ;;
    medium-20) stamped medium-20-runs python benchmarks/overhead.py medium --cores 2 --replicates 10 ;;
    own_loop) stamped own_loop python benchmarks/own_loop.py --runs 6 --epochs 40 --cores 2 --rounds 2 ;;
    tax_split) stamped tax_split python benchmarks/tax_split.py --runs 4 24 ;;
    loop_split) stamped loop_split python benchmarks/loop_split.py --epochs 30 ;;
    execute_scale) stamped execute_scale python benchmarks/execute_scale.py --runs 2000 --trivial-jobs 2000 ;;
    scale) stamped scale python benchmarks/scale.py --runs 10000 ;;
    audit_scale) stamped audit_scale python benchmarks/audit_scale.py --runs 10000 ;;
    diverge) stamped diverge python benchmarks/diverge_time.py ;;
    checkpoint) stamped checkpoint python benchmarks/checkpoint_cost.py ;;
    watch) stamped watch_overhead python benchmarks/watch_overhead.py --epochs 20 --rounds 15 ;;
    ablation) benchmarks/ablation.sh ;;
    instability)
        benchmarks/instability.sh
        python benchmarks/instability.py --fresh
        ;;
    *)
        echo "run_all.sh: no section $section" >&2
        exit 2
        ;;
    esac
done
python - <<'PY' >"$out/machine.json"
import json, os, platform
from reprogrid.record.environment import cpu_model, package_version
print(json.dumps({"commit": os.environ["COMMIT"], "cpu": cpu_model(), "cores": os.cpu_count(),
                  "bytecode_cache": "PYTHONDONTWRITEBYTECODE" not in os.environ,
                  "python": platform.python_version(), "torch": package_version("torch"),
                  "snakemake": package_version("snakemake"), "mlflow": package_version("mlflow")}, indent=1))
PY
python benchmarks/results_doc.py # RESULTS.md from the JSON just written
