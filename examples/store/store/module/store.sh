# Sourced by the store's action scripts (POSIX sh; the working directory is the module folder).
# Loads the parameters in force and defines small helpers. The password goes to redis-cli
# through REDISCLI_AUTH only: never in arguments, never printed.

RUN_DIR=${NOTES_STORE_RUN_DIR:-/run/notes-store}
CONF=$RUN_DIR/redis.conf
PID_FILE=$RUN_DIR/redis-server.pid
DATA_DIR=${DRAGONBALL_STORAGE_DIR:-$PWD/storage}/redis

say() { echo "store: $*"; }

# use_params [FILE]: set $param_* from FILE (default: the parameters in force) and the auth.
use_params() {
    if [ -n "${1:-}" ]; then
        _vars=$(/opt/dragon_ball/bin/params --file "$1" sh port password maxmemory maxmemory_policy)
    else
        _vars=$(/opt/dragon_ball/bin/params sh port password maxmemory maxmemory_policy)
    fi || exit 1
    eval "$_vars"
    if [ -n "$param_password" ]; then export REDISCLI_AUTH="$param_password"; else unset REDISCLI_AUTH; fi
}

# rcli ARGS...: redis-cli against the local server on $param_port, bounded in time.
rcli() { timeout 5 redis-cli -h 127.0.0.1 -p "$param_port" "$@"; }

# alive PID: true while PID is a live process (a zombie is not alive).
alive() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
    [ "$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]
}

server_pid() { cat "$PID_FILE" 2>/dev/null || true; }
