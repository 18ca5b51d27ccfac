#!/bin/sh
# A fast shutdown: open transactions are rolled back, everything committed is on disk.
. module/db.sh
use_params
runuser -u postgres -- "$PG/pg_ctl" -D "$DATA" -m fast -w -t 50 stop && say "PostgreSQL stopped"
