#!/usr/bin/env bash
# Run the notes example app (examples/: web -> api -> store) on this machine and prove it works.
#
#   sudo bash scripts/demo-app.sh          set up, build, (re)create the three containers, wait until
#                                      they are healthy, post a note through the web and read it
#                                      back, then print the address
#   sudo bash scripts/demo-app.sh --down   stop (stop actions run) and remove the demo containers and
#                                      network; the data folder stays
#
# Runs as root with no input. Idempotent: the old demo containers are removed first, and the
# notes survive (storage/ and log/ of each module live in <data folder>/<module>/ here).
# Environment: DRAGONBALL_DEMO_PORT (default 8080, bound to 127.0.0.1 only),
#              DRAGONBALL_DEMO_DATA (default /var/lib/dragonball-demo).
# Exit status: 0 ok · 1 a step failed (the message says which) · 2 usage or not root
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DOCKER=/usr/bin/docker  # not /usr/local/bin/docker: some machines have an older client there
NETWORK=dragonball-demo
PREFIX=dragonball-demo
LABEL=io.dragonball.demo=1
DATA=${DRAGONBALL_DEMO_DATA:-/var/lib/dragonball-demo}
PORT=${DRAGONBALL_DEMO_PORT:-8080}
MODULES=(store api web)  # dependency order: each one's backends come before it
HEALTHY_WITHIN=120       # seconds; the images check their health every 10 s

say() { printf 'demo: %s\n' "$*"; }

die() {  # die STATUS WHAT [HINT...]
    local status=$1 what=$2 line
    shift 2
    printf 'demo: error: %s\n' "$what" >&2
    for line in "$@"; do printf '  %s\n' "$line" >&2; done
    exit "$status"
}

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

down() {
    local ids networks
    ids=$("$DOCKER" ps -aq --filter "label=$LABEL")
    if [ -n "$ids" ]; then
        say "stopping the old demo containers (their stop actions run)"
        # shellcheck disable=SC2086  # one id per word
        "$DOCKER" stop -t 10 $ids >/dev/null
        # shellcheck disable=SC2086
        "$DOCKER" rm $ids >/dev/null
    fi
    networks=$("$DOCKER" network ls -q --filter "label=$LABEL")
    if [ -n "$networks" ]; then
        # shellcheck disable=SC2086
        "$DOCKER" network rm $networks >/dev/null
    fi
}

# The store's password: made once (128 random bits), kept 0600 beside the data, so a second
# run hands the same one to the store (whose persisted parameters win) and to the api.
store_password() {
    local file="$DATA/store-password"
    if [ ! -s "$file" ]; then
        mkdir -p "$DATA"
        (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$file")
    fi
    cat "$file"
}

params() {  # params MODULE PASSWORD: the module's DRAGONBALL_PARAMS
    case $1 in
        store) printf '{"password": "%s", "maxmemory": "64mb"}' "$2" ;;
        api) printf '{"store_host": "store", "store_port": 6379, "store_password": "%s", %s}' \
            "$2" '"greeting": "Hello from the DragonBall demo"' ;;
        web) printf '{"backends": ["api:8080"], "listen_port": 8080}' ;;
    esac
}

run_module() {  # run_module NAME PASSWORD
    local name=$1 dir=$DATA/$1 publish=() module=$1
    mkdir -p "$dir/storage" "$dir/log"
    # the web is the built-in Service (docs/service.md): its module folder is the Service's
    [ "$name" = web ] && publish=(--publish "127.0.0.1:$PORT:8080") && module=service
    "$DOCKER" run --detach --name "$PREFIX-$name" --hostname "$name" \
        --network "$NETWORK" --network-alias "$name" --label "$LABEL" \
        --restart unless-stopped "${publish[@]}" \
        --volume "$dir/storage:/opt/dragon_ball/service/$module/storage" \
        --volume "$dir/log:/opt/dragon_ball/service/$module/log" \
        --env "DRAGONBALL_PARAMS=$(params "$name" "$2")" \
        "dragonball-example/$name:latest" >/dev/null
    say "started $PREFIX-$name"
}

health() {
    "$DOCKER" inspect -f '{{if .State.Running}}{{if .State.Health}}{{.State.Health.Status}}{{else}}running{{end}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null || echo gone
}

wait_healthy() {
    local name state deadline=$((SECONDS + HEALTHY_WITHIN))
    for name in "${MODULES[@]}"; do
        while state=$(health "$PREFIX-$name"); [ "$state" != healthy ]; do
            if [ "$state" = unhealthy ] || [ "$state" = exited ] || [ "$state" = gone ] \
                || [ $SECONDS -ge $deadline ]; then
                "$DOCKER" logs --tail 40 "$PREFIX-$name" >&2 || true
                die 1 "$PREFIX-$name is $state (its last log lines are above)" \
                    "its supervisor log: $DATA/$name/log/dragonball/supervisor.log"
            fi
            sleep 1
        done
        say "$PREFIX-$name is healthy"
    done
}

# POST a note through the web (nginx -> api -> store) and find it when reading the list back.
check_round_trip() {
    "$REPO/.venv/bin/python" - "http://127.0.0.1:$PORT" <<'EOF'
import json, sys, time, urllib.request

base = sys.argv[1]
http = urllib.request.build_opener(urllib.request.ProxyHandler({}))
text = f"hello from demo.sh at {time.strftime('%Y-%m-%d %H:%M:%S')}"
request = urllib.request.Request(f"{base}/api/notes", data=json.dumps({"text": text}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
with http.open(request, timeout=10) as r:
    note = json.loads(r.read())
with http.open(f"{base}/api/notes", timeout=10) as r:
    listing = json.loads(r.read())
if note not in listing["notes"]:
    sys.exit(f"demo: error: the note posted ({note}) is not in the list read back")
print(f"demo: note #{note['id']} posted through the web and read back "
      f"({listing['total']} notes stored, served by api {note['by']})")
EOF
}

main() {
    case ${1:-} in
        -h|--help) usage; exit 0 ;;
        --down|"") ;;
        *) usage >&2; exit 2 ;;
    esac
    [ "$(id -u)" -eq 0 ] || die 2 "this script must run as root" "run: sudo bash scripts/demo-app.sh $*"
    cd "$REPO"
    if [ "${1:-}" = --down ]; then
        [ -x "$DOCKER" ] || die 1 "no Docker client at $DOCKER" "nothing to remove"
        down
        say "demo removed; its data stays in $DATA (delete that folder to start afresh)"
        exit 0
    fi

    bash scripts/setup.sh
    .venv/bin/python build.py base
    .venv/bin/python build.py examples
    down
    "$DOCKER" network create --label "$LABEL" "$NETWORK" >/dev/null
    local password name
    password=$(store_password)
    for name in "${MODULES[@]}"; do
        run_module "$name" "$password"
    done
    wait_healthy
    check_round_trip || die 1 "the note did not make the round trip (output above)" \
        "look at: $DOCKER logs $PREFIX-web, $PREFIX-api, $PREFIX-store"
    say "the notes app runs at http://127.0.0.1:$PORT/"
    say "remove it with: sudo bash scripts/demo-app.sh --down"
}

main "$@"
