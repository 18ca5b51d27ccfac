# Shared by the db's action scripts (sourced): paths, parameters, helpers.
PG=/usr/lib/postgresql/15/bin
DATA="${DRAGONBALL_STORAGE_DIR:?}/pgdata"
SOCKET=/run/postgresql
say() { echo "db: $*"; }
use_params() { eval "$(/opt/dragon_ball/bin/params sh port database user password)"; }
# psql as the postgres superuser over the local socket (peer authentication): SQL on stdin,
# never in a process argument (a password must not show in ps).
psql_su() { runuser -u postgres -- "$PG/psql" -h "$SOCKET" -p "$param_port" -X -q -v ON_ERROR_STOP=1 "$@"; }
# A text as an SQL string literal (standard_conforming_strings: only ' is special).
sql_text() { printf "'%s'" "$(printf %s "$1" | sed "s/'/''/g")"; }
valid_name() { printf %s "$1" | grep -Eq '^[a-z_][a-z0-9_]{0,62}$'; }
check_params() {
    ok=0
    valid_name "$param_database" || { say "database must be a lower-case SQL name, got '$param_database'"; ok=1; }
    valid_name "$param_user" || { say "user must be a lower-case SQL name, got '$param_user'"; ok=1; }
    [ -n "$param_password" ] || { say "password is empty: set it (dragonball params set @shared db_password=-)"; ok=1; }
    case "$param_port" in ''|*[!0-9]*) say "port must be a number"; ok=1 ;; esac
    return $ok
}
