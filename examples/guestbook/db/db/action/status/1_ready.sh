#!/bin/sh
. module/db.sh
use_params
"$PG/pg_isready" -q -U postgres -h "$SOCKET" -p "$param_port" && say "accepting on port $param_port"
