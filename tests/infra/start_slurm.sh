#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the cluster tests: installs Debian's
# SLURM and munge if missing (install_services.sh), starts munged, slurmctld and slurmd with a
# private config (no systemd, proctrack/linuxproc, task/none, no accounting daemon).
# Prints `SLURM_CONF=...` on its last line: export it for sbatch/squeue and Snakemake.
#   usage: start_slurm.sh DIR        stop: start_slurm.sh stop DIR
# Needs root (or sudo). Without slurmdbd there is no `sacct`: the profile asks the
# executor plugin to poll `squeue` instead (profiles/slurm/config.yaml).
set -euo pipefail
if [ "${1:-}" = "stop" ]; then
    dir=$2
    for daemon in slurmd slurmctld; do
        [ -f "$dir/$daemon.pid" ] && kill "$(cat "$dir/$daemon.pid")" 2>/dev/null || true
    done
    [ -f "$dir/munged.pid" ] && kill "$(cat "$dir/munged.pid")" 2>/dev/null || true
    if grep -qs "^ClusterName=reprogrid$" /etc/slurm/slurm.conf; then rm -f /etc/slurm/slurm.conf; fi
    exit 0
fi
dir=$(realpath -m "$1")
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
"$(dirname "$0")/install_services.sh" "$dir/install.log" || { tail -20 "$dir/install.log" >&2; exit 1; }
chown munge "$dir/munge"
host=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
cat > "$dir/slurm.conf" <<CONF
ClusterName=reprogrid
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
# Job steps (srun inside sbatch) look for the default path, whatever SLURM_CONF said at
# submission; a real cluster's config there is never replaced.
if [ -f /etc/slurm/slurm.conf ] && ! grep -q "^ClusterName=reprogrid$" /etc/slurm/slurm.conf; then
    echo "/etc/slurm/slurm.conf belongs to another cluster; not starting a test cluster here" >&2
    exit 1
fi
$SUDO mkdir -p /etc/slurm
$SUDO cp "$dir/slurm.conf" /etc/slurm/slurm.conf
export SLURM_CONF=/etc/slurm/slurm.conf
runuser -u munge -- /usr/sbin/munged --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
cp "$dir/munge/munged.pid" "$dir/munged.pid"
/usr/sbin/slurmctld -f "$SLURM_CONF" -i
/usr/sbin/slurmd -f "$SLURM_CONF"
for _ in $(seq 120); do
    if sinfo -h -o %T 2>/dev/null | grep -q idle; then
        # a node that is up but runs no job would leave the tests waiting: run one
        if timeout 120 srun --ntasks=1 --mem=100 --time=2 true >"$dir/probe.log" 2>&1; then
            echo "SLURM_CONF=$SLURM_CONF"
            exit 0
        fi
        echo "SLURM is up but a one-second job did not run in 2 min:" >&2
        cat "$dir/probe.log" >&2
        break
    fi
    sleep 0.5
done
echo "SLURM did not come up; the ends of its logs:" >&2
tail -15 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
exit 1
