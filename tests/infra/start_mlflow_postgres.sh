#!/usr/bin/env bash
# Installs Debian's PostgreSQL if missing (install_services.sh), starts a private cluster on 127.0.0.1 and
# an MLflow tracking server on it with artifacts served by the server, for the
# end-to-end tests of a shared tracking server. Prints `MLFLOW_TRACKING_URI=http://...`
# on its last line; stop everything with `tests/infra/start_mlflow_postgres.sh stop DIR`.
#   usage: start_mlflow_postgres.sh DIR [PG_PORT] [MLFLOW_PORT]
# Needs root (or sudo) for apt and to run PostgreSQL as the `postgres` user. Nothing it
# starts outlives `stop`, and nothing listens beyond 127.0.0.1.
set -euo pipefail
if [ "${1:-}" = "stop" ]; then
    dir=$2
    [ -f "$dir/mlflow.pid" ] && kill "$(cat "$dir/mlflow.pid")" 2>/dev/null || true
    if [ -d "$dir/pgdata" ]; then
        runuser -u postgres -- "$(ls -d /usr/lib/postgresql/*/bin | tail -1)/pg_ctl" -D "$dir/pgdata" -m fast stop >/dev/null 2>&1 || true
    fi
    exit 0
fi
dir=$(realpath -m "$1"); pg_port=${2:-55432}; mlflow_port=${3:-55000}
here=$(cd "$(dirname "$0")" && pwd)
venv_bin=$(dirname "$(command -v python)")
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
mkdir -p "$dir"
"$here/install_services.sh" "$dir/install.log" || { tail -20 "$dir/install.log" >&2; exit 1; }
bin=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
chown postgres "$dir" 2>/dev/null || $SUDO chown postgres "$dir"
runuser -u postgres -- "$bin/initdb" -D "$dir/pgdata" -A trust -U postgres >/dev/null
runuser -u postgres -- "$bin/pg_ctl" -D "$dir/pgdata" -l "$dir/postgres.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$dir -c max_connections=200" start >/dev/null
runuser -u postgres -- "$bin/createdb" -h 127.0.0.1 -p "$pg_port" mlflow
"$venv_bin/mlflow" server --backend-store-uri "postgresql://postgres@127.0.0.1:$pg_port/mlflow" \
    --serve-artifacts --artifacts-destination "$dir/artifacts" \
    --host 127.0.0.1 --port "$mlflow_port" --workers 4 > "$dir/mlflow.log" 2>&1 &
echo $! > "$dir/mlflow.pid"
# its first start creates MLflow's tables: allow for a busy machine, then say why not
for _ in $(seq 360); do
    if python - "$mlflow_port" <<'PY' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2)
PY
        echo "MLFLOW_TRACKING_URI=http://127.0.0.1:$mlflow_port"
        exit 0
    fi
    sleep 0.5
done
echo "the MLflow server did not answer on port $mlflow_port in 3 min; its log ($dir/mlflow.log) ends:" >&2
tail -30 "$dir/mlflow.log" >&2
exit 1
