#!/usr/bin/env bash
# Installs Debian's PostgreSQL, SLURM and munge for the service tests
# (start_mlflow_postgres.sh, start_slurm.sh), without recommended packages: slurm-wlm's
# recommends bring HDF5, OpenMPI and a dozen plugins, hundreds of MB from the mirror.
# CI runs it before the tests, so that a download's pace is not counted in a test's time
# limit; the start scripts call it too, and it does nothing when all three are there.
# Needs root (or sudo) and the Debian package mirror; its output goes to LOG (default
# stderr), so that no daemon a package starts can hold a caller's pipe open.
#   usage: install_services.sh [LOG]
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v slurmctld >/dev/null \
        && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    exit 0
fi
log=${1:-/dev/stderr}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
# wait for another apt (a second test worker's, the OS's) rather than fail at its lock
apt=($SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
"${apt[@]}" update -qq >>"$log" 2>&1
"${apt[@]}" install -y -qq --no-install-recommends postgresql slurmd slurmctld slurm-client munge >>"$log" 2>&1
