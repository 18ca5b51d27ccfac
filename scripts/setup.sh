#!/usr/bin/env bash
# Prepare a Debian 12 machine to build and test DragonBall. Run as root, no input needed
# (CI runs it on a fresh machine). Idempotent: a second run changes nothing, in seconds.
#
#   1. Debian packages: python3, python3-venv, python3-pip, docker.io, debootstrap, openssl,
#      ca-certificates, iptables, wrk, binutils (PyInstaller's --strip runs strip), patchelf
#      (the runtime carries its own C library: builder/loader.py),
#      chromium (the portal's browser tests drive it with Playwright; its own browser
#      download cannot work offline), libnss3-tools (certutil: the e2e browser trusts the
#      cluster CA only)
#      (apt-get update only when something is missing)
#   2. .venv at the repository root, made with the python3 on PATH (>= 3.11), holding
#      the project with its test and build tools: pip install -e '.[dev,build]'
#      (skipped while pyproject.toml is unchanged)
#   3. a Docker engine that answers: systemctl when systemd is PID 1, else dockerd in
#      the background, logging to /var/log/dragonball-dockerd.log
#
# Exit status: 0 ready · 2 not root · 3 packages · 4 python/venv · 5 Docker engine
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV="$REPO/.venv"
STAMP="$VENV/.setup-stamp"
DOCKER=/usr/bin/docker  # not /usr/local/bin/docker: some machines have an older client there
DOCKERD_LOG=/var/log/dragonball-dockerd.log
DOCKER_WAIT_S=60
DOCKERD_PID=""
PACKAGES=(python3 python3-venv python3-pip docker.io debootstrap ca-certificates iptables wrk binutils patchelf openssl chromium libnss3-tools)
EXTRAS='.[dev,build]'

say() { printf 'setup: %s\n' "$*"; }

# die STATUS WHAT [HINT...]: what failed, then where to look and how to fix it.
die() {
    local status=$1 what=$2
    shift 2
    printf 'setup: error: %s\n' "$what" >&2
    local line
    for line in "$@"; do printf '  %s\n' "$line" >&2; done
    exit "$status"
}

require_root() {
    [ "$(id -u)" -eq 0 ] || die 2 "this script must run as root" "run: sudo bash scripts/setup.sh"
}

# --- 1. Debian packages -------------------------------------------------------------

missing_packages() {
    local package
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -qx 'install ok installed' \
            || printf '%s\n' "$package"
    done
}

apt_update() {
    say "packages: apt-get update"
    apt-get update -q </dev/null || die 3 "apt-get update failed (output above)" \
        "check the sources in /etc/apt/sources.list and /etc/apt/sources.list.d/" \
        "and that their mirror answers from this machine, then run this script again"
}

apt_install() {
    apt-get install -y -q --no-install-recommends "$@" </dev/null
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    if [ "${#missing[@]}" -eq 0 ]; then
        say "packages: all present"
        return
    fi
    say "packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh image often ships without package lists; stale lists show up as a failed install.
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        apt_update
    fi
    if ! apt_install "${missing[@]}"; then
        say "packages: install failed with the current package lists; refreshing them"
        apt_update
        apt_install "${missing[@]}" || die 3 "apt-get install ${missing[*]} failed (output above)" \
            "fix what apt reports (a held package, a full disk, a broken mirror), then rerun"
    fi
}

# --- 2. Python virtual environment -----------------------------------------------------

find_python() {
    local python
    python=$(command -v python3) || die 4 "no python3 on PATH" "install it: apt-get install python3"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die 4 "$python is Python $("$python" -c 'import platform; print(platform.python_version())'); DragonBall needs 3.11 or newer" \
               "put a python3 >= 3.11 first on PATH (Debian 12's /usr/bin/python3 is 3.11)"
    printf '%s\n' "$python"
}

venv_works() {
    [ -x "$VENV/bin/python" ] \
        && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

pyproject_hash() {
    sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1
}

project_installed() {
    [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(pyproject_hash)" ] \
        && "$VENV/bin/python" -c 'import dragonball, docker, rich, pytest, PyInstaller, zstandard, jinja2, playwright' 2>/dev/null
}

setup_venv() {
    if ! venv_works; then
        local python
        python=$(find_python)
        # --clear: a venv copied from another machine points at a python that is not here.
        say "venv: creating $VENV with $python"
        "$python" -m venv --clear "$VENV" \
            || die 4 "'$python -m venv $VENV' failed" "install python3-venv, then rerun"
    fi
    if project_installed; then
        say "venv: project installed, pyproject.toml unchanged"
        return
    fi
    say "venv: pip install -e '$EXTRAS'"
    (cd "$REPO" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$EXTRAS") \
        || die 4 "pip install -e '$EXTRAS' failed (output above)" \
               "check that PyPI answers from this machine, or fix pyproject.toml, then rerun"
    pyproject_hash >"$STAMP"
}

# --- 3. Docker engine ------------------------------------------------------------------

docker_answers() {
    timeout 10 "$DOCKER" info >/dev/null 2>&1
}

dockerd_running() {
    [ -f /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null
}

launch_dockerd() {
    if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
        say "docker: systemctl start docker"
        systemctl start docker || die 5 "systemctl start docker failed" \
            "read: journalctl -u docker --no-pager | tail -50" "fix what it reports, then rerun"
        DOCKERD_LOG="journalctl -u docker"
    elif dockerd_running; then
        say "docker: dockerd (pid $(cat /var/run/docker.pid)) is starting; waiting"
    else
        say "docker: no systemd here; starting dockerd in the background (log: $DOCKERD_LOG)"
        printf '=== started by scripts/setup.sh at %s\n' "$(date -u +%FT%TZ)" >>"$DOCKERD_LOG"
        setsid /usr/sbin/dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
        DOCKERD_PID=$!
    fi
}

wait_for_docker() {
    local deadline=$((SECONDS + DOCKER_WAIT_S))
    while [ "$SECONDS" -lt "$deadline" ]; do
        docker_answers && return 0
        # A dockerd that already died will not answer: say so now, not in a minute.
        if [ -n "$DOCKERD_PID" ] && ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            say "docker: dockerd exited during start-up"
            return 1
        fi
        sleep 1
    done
    return 1
}

start_docker() {
    [ -x "$DOCKER" ] || die 5 "$DOCKER is missing" "install it: apt-get install docker.io"
    if docker_answers; then
        say "docker: engine answers"
        return
    fi
    launch_dockerd
    if ! wait_for_docker; then
        [ -f "$DOCKERD_LOG" ] && tail -n 20 "$DOCKERD_LOG" | sed 's/^/  | /' >&2
        die 5 "the Docker engine did not come up ('$DOCKER info' fails; waited up to ${DOCKER_WAIT_S} s)" \
            "its log: $DOCKERD_LOG (last lines above)" \
            "fix what the log reports (another dockerd or containerd running, iptables," \
            "the storage driver), or run /usr/sbin/dockerd in a terminal to watch it, then rerun"
    fi
    say "docker: engine answers ($("$DOCKER" version --format '{{.Server.Version}}'))"
}

main() {
    require_root
    install_packages
    setup_venv
    start_docker
    say "ready in ${SECONDS} s: build with '.venv/bin/python build.py', test with 'bash scripts/test.sh'"
}

main "$@"
