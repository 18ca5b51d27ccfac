#!/bin/sh
# Start PostgreSQL in the background (in this script's process group), wait until it accepts.
# log_min_error_statement=panic: a failed statement (an ALTER ROLE ... PASSWORD) is never
# written to the log with its text.
. module/db.sh
use_params
runuser -u postgres -- "$PG/postgres" -D "$DATA" -p "$param_port" -c listen_addresses='*' \
    -c unix_socket_directories="$SOCKET" -c log_min_error_statement=panic \
    -c logging_collector=off &
echo $! >"$SOCKET/postgres.pid.run"
i=0
until "$PG/pg_isready" -q -U postgres -h "$SOCKET" -p "$param_port"; do
    i=$((i + 1))
    [ $i -lt 120 ] || { say "PostgreSQL did not accept within 60 s"; exit 1; }
    sleep 0.5
done
say "PostgreSQL accepting on port $param_port"
