# Sourced by the store's action scripts (POSIX sh; the working directory is the module folder).
# Loads the parameters in force and defines small helpers. The password goes to redis-cli
# through REDISCLI_AUTH only: never in arguments, never printed.

RUN_DIR=${NOTES_STORE_RUN_DIR:-/run/notes-store}
CONF=$RUN_DIR/redis.conf
PID_FILE=$RUN_DIR/redis-server.pid
SENTINEL_PID_FILE=$RUN_DIR/redis-sentinel.pid
DATA_DIR=${DRAGONBALL_STORAGE_DIR:-$PWD/storage}/redis
SENTINEL_CONF=${DRAGONBALL_STORAGE_DIR:-$PWD/storage}/sentinel/sentinel.conf

# replicated: true when DRAGONBALL_PEERS names two or more slots (docs/module-spec.md,
# "Stateful slots and replication"); then each slot also runs a sentinel (module/ha.py).
replicated() { case "${DRAGONBALL_PEERS:-}" in *,*) return 0 ;; *) return 1 ;; esac; }

say() { echo "store: $*"; }

_PARAMS="port password maxmemory maxmemory_policy appendfsync sentinel_port"

# use_params [FILE]: set $param_* from FILE (default: the parameters in force) and the auth.
# For FILE (the old parameters) the PARAM_* variables are left out: they hold the new values,
# and `params` lays them over the file, so a key the old file lacks would read as unchanged.
use_params() {
    if [ -n "${1:-}" ]; then
        _vars=$(unset $(env | sed -n 's/^\(PARAM_[A-Za-z0-9_]*\)=.*/\1/p')
                /opt/dragon_ball/bin/params --file "$1" sh $_PARAMS)
    else
        _vars=$(/opt/dragon_ball/bin/params sh $_PARAMS)
    fi || exit 1
    eval "$_vars"
    if [ -n "$param_password" ]; then export REDISCLI_AUTH="$param_password"; else unset REDISCLI_AUTH; fi
}

# rcli ARGS...: redis-cli against the local server on $param_port, bounded in time.
rcli() { timeout 5 redis-cli -h 127.0.0.1 -p "$param_port" "$@"; }
# scli ARGS...: the same against the local sentinel (same password).
scli() { timeout 5 redis-cli -h 127.0.0.1 -p "$param_sentinel_port" "$@"; }

# alive PID: true while PID is a live process (a zombie is not alive).
alive() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
    [ "$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]
}

server_pid() { cat "$PID_FILE" 2>/dev/null || true; }
sentinel_pid() { cat "$SENTINEL_PID_FILE" 2>/dev/null || true; }

# runas: the prefix that runs a command as the redis user (empty when not root).
runas() {
    if [ "$(id -u)" = 0 ] && id redis >/dev/null 2>&1 && command -v setpriv >/dev/null; then
        echo "setpriv --reuid=redis --regid=redis --init-groups"
    fi
}
