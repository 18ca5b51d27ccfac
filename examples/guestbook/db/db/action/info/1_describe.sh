#!/bin/sh
. module/db.sh
use_params
say "PostgreSQL $(cat "$DATA/PG_VERSION" 2>/dev/null), port $param_port, database $param_database, user $param_user"
