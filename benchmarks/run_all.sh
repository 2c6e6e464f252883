#!/usr/bin/env bash
# Every figure in benchmarks/RESULTS.md and the README, measured side by side in one run
# (about an hour on 2 cores). Writes benchmarks/results/*.json, and the commit measured into
# machine.json. Run from the repository root with the project's environment active, on
# an otherwise idle machine, with a clean working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
mkdir -p "$out"
python benchmarks/overhead.py small --cores 2 > "$out/small.json"
python benchmarks/overhead.py medium --cores 2 --workflow-cores 2 1 > "$out/medium.json"
python benchmarks/overhead.py medium --cores 2 --replicates 10 > "$out/medium-20-runs.json"
python benchmarks/execute_scale.py --runs 2000 --trivial-jobs 2000 > "$out/execute_scale.json"
python benchmarks/scale.py --runs 10000 > "$out/scale.json"
python benchmarks/audit_scale.py --runs 10000 > "$out/audit_scale.json"
python benchmarks/diverge_time.py > "$out/diverge.json"
python benchmarks/checkpoint_cost.py > "$out/checkpoint.json"
benchmarks/ablation.sh
benchmarks/instability.sh
python benchmarks/instability.py --fresh
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- reprogrid workflow scripts Snakefile benchmarks/*.py || echo "+changes")
COMMIT="$commit" python - <<'PY' > "$out/machine.json"
import json, os, platform
from reprogrid.record.environment import cpu_model, package_version
print(json.dumps({"commit": os.environ["COMMIT"], "cpu": cpu_model(), "cores": os.cpu_count(),
                  "python": platform.python_version(), "torch": package_version("torch"),
                  "snakemake": package_version("snakemake"), "mlflow": package_version("mlflow")}, indent=1))
PY
cat "$out"/*.json
python benchmarks/results_doc.py  # RESULTS.md from the JSON just written
