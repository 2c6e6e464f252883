#!/usr/bin/env bash
# The ecosystem's checks, as CI runs them: ruff, snakefmt --check, snakemake --lint.
# snakemake --lint asks every rule for a conda environment or container; reprogrid's
# rules run in the project's own (pip-installed, pinned) environment instead, so that
# one lint is reported but not failed on. Any other lint fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
ruff check .
snakefmt --check Snakefile reprogrid/workflow/Snakefile reprogrid/workflow/rules/
lints=$(snakemake --lint 2>&1 || true)
other=$(printf '%s\n' "$lints" | grep -E '^    \* ' | grep -v 'Specify a conda environment or container for each rule' || true)
if [ -n "$other" ]; then
    printf '%s\n' "$lints"
    echo "snakemake --lint: fix the lints above" >&2
    exit 1
fi
echo "snakemake --lint: clean (apart from: conda environment or container per rule)"
