#!/bin/sh
# First start only: initdb into storage/pgdata (kept on this server's disk across restarts).
set -eu
. module/db.sh
use_params
check_params
mkdir -p "$DATA" "$SOCKET"
chown postgres:postgres "$DATA" "$SOCKET"
chmod 700 "$DATA"
if [ -s "$DATA/PG_VERSION" ]; then
    say "data found in storage/pgdata (PostgreSQL $(cat "$DATA/PG_VERSION")): no initdb"
    exit 0
fi
runuser -u postgres -- "$PG/initdb" -D "$DATA" --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
echo "host all all 0.0.0.0/0 scram-sha-256" >>"$DATA/pg_hba.conf"
say "initialised storage/pgdata"
