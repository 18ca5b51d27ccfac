#!/bin/sh
# The app's role and database, with the password in force (every start: a password changed
# while this task was down is taken here).
set -eu
. module/db.sh
use_params
{
    echo "SELECT format('CREATE ROLE %I LOGIN', $(sql_text "$param_user"))"
    echo "WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = $(sql_text "$param_user")) \\gexec"
    echo "ALTER ROLE \"$param_user\" PASSWORD $(sql_text "$param_password");"
    echo "SELECT format('CREATE DATABASE %I OWNER %I', $(sql_text "$param_database"), $(sql_text "$param_user"))"
    echo "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = $(sql_text "$param_database")) \\gexec"
} | psql_su -d postgres >/dev/null
say "role $param_user and database $param_database ready"
