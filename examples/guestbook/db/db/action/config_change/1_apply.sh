#!/bin/sh
# A new password: ALTER ROLE (SQL on stdin). A new port or names need a restart: refused.
set -eu
. module/db.sh
use_params
check_params
echo "ALTER ROLE \"$param_user\" PASSWORD $(sql_text "$param_password");" | psql_su -d postgres
say "password of $param_user changed"
