#!/bin/sh
# DragonBall self-extracting release (docs/bin-format.md). Run as root: sh THIS_FILE --help
# The build fills in the values below; everything after the final 'exit' is binary data.
DB_VERSION="@VERSION@"
DB_STUB_SIZE=@STUB_SIZE@
DB_TOTAL_SIZE=@TOTAL_SIZE@
DB_SECTIONS="@SECTIONS@"
DB_GLIBC_FLOOR="@GLIBC_FLOOR@"

umask 077
LC_ALL=C
export LC_ALL

# The stub's own exit statuses: 80-89, a range the runtime never uses, so a status says who
# ended the run (README.md, "Exit statuses"). 130/143: interrupted (INT; TERM or HUP).
E_USAGE=80 E_CORRUPT=81 E_SPACE=82 E_TOOLS=83 E_PLATFORM=84

say() { printf '%s\n' "$*" >&2; }
die() { code=$1; shift; say "DragonBall: $*"; exit "$code"; }

usage() {
    cat <<EOF
DragonBall $DB_VERSION: one file to install a cluster, offline.

usage: sh $0 [OPTION] [COMMAND [ARGS...]]

options (handled by this file, before anything is unpacked):
  --help            this text
  --version         the release version
  --info            the release manifest (JSON)
  --list            the sections and the images of this release
  --verify          check the file's size and every section's SHA-256, then stop
  --extract DIR     unpack every section into DIR (new or empty), then stop
  --target DIR      unpack the runtime under DIR (default: \$TMPDIR or /tmp); DIR
                    and the folders above it must be writable by root (or you) only

commands (run by the bundled runtime; 'help' lists them all):
  install, preflight, reset, ...

exit codes of this file (80-89, never the runtime's): 80 usage, 81 corrupt or
tampered file, 82 no space or a noexec folder, 83 a required tool is missing,
84 this server cannot run the runtime (architecture, glibc); 130/143 interrupted;
otherwise the command's own (0 ok, 1 failed, 2 invalid, 3 not found, 4 conflict,
5 unavailable, 6 denied, 70 internal error: README.md, "Exit statuses").
EOF
}

# -- the file itself -------------------------------------------------------------
case $0 in /*) self=$0 ;; *) self=$(pwd)/$0 ;; esac
[ -f "$self" ] && [ -r "$self" ] || die $E_USAGE "cannot read $0 (run it as: sh ./DragonBall-$DB_VERSION.bin)"

for tool in tail head sha256sum wc gzip tar mktemp df awk stat id tee; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -z "$missing" ] || die $E_TOOLS "missing tools:$missing (install coreutils, gzip, tar, mawk)"

# section NAME -> sets s_offset s_size s_sha
section() {
    for entry in $DB_SECTIONS; do
        case $entry in "$1":*)
            s_offset=$(echo "$entry" | awk -F: '{print $2}')
            s_size=$(echo "$entry" | awk -F: '{print $3}')
            s_sha=$(echo "$entry" | awk -F: '{print $4}')
            return 0 ;;
        esac
    done
    die $E_CORRUPT "this file has no section $1"
}

# stream NAME: the bytes of a section on stdout
stream() {
    section "$1"
    tail -c +$((s_offset + 1)) "$self" | head -c "$s_size"
}

verify() {
    actual=$(wc -c <"$self" | awk '{print $1}')
    if [ "$actual" -lt "$DB_TOTAL_SIZE" ]; then
        die $E_CORRUPT "$self is truncated: $actual bytes, the build wrote $DB_TOTAL_SIZE. Copy it again and compare it with SHA256SUMS."
    elif [ "$actual" -gt "$DB_TOTAL_SIZE" ]; then
        die $E_CORRUPT "$self has $((actual - DB_TOTAL_SIZE)) bytes more than the build wrote (garbage appended, or files concatenated). Copy it again and compare it with SHA256SUMS."
    fi
    for entry in $DB_SECTIONS; do
        name=${entry%%:*}
        sum=$(stream "$name" | sha256sum | awk '{print $1}')
        section "$name"
        [ "$sum" = "$s_sha" ] || die $E_CORRUPT "section '$name' of $self is corrupt or was altered (SHA-256 $sum, expected $s_sha). Nothing was changed on this server. Copy the file again and compare it with SHA256SUMS."
    done
}

# room DIR KIB: DIR must have KIB free
room() {
    free=$(df -Pk "$1" 2>/dev/null | awk 'NR==2 {print $4}')
    [ -n "$free" ] || die $E_SPACE "cannot read the free space of $1"
    [ "$free" -ge "$2" ] || die $E_SPACE "$1 has $((free / 1024)) MiB free, $(($2 / 1024)) MiB are needed: free some space or choose another folder with --target DIR"
}

work=
cleanup() { [ -z "$work" ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# private DIR WHAT: DIR and every folder above it can be changed by root and us only.
# Whoever may write to one of them could rename what was unpacked and checked there and
# put something else in its place before it runs. A sticky folder (/tmp) is fine: there,
# only an entry's owner may rename it.
private() {
    p=$(cd "$1" 2>/dev/null && pwd -P) || die $E_USAGE "$2 $1: cannot enter it"
    me=$(id -u)
    while :; do
        info=$(stat -c '%u %a' -- "$p") || die $E_USAGE "$2 $1: cannot read the owner of $p"
        owner=${info% *} mode=${info#* }
        [ "$owner" = 0 ] || [ "$owner" = "$me" ] \
            || die $E_USAGE "$2 $1: $p belongs to another user (uid $owner), who could swap what is unpacked there before it runs. Choose a folder of root's, e.g. $2 /root"
        if [ $((0$mode & 022)) -ne 0 ] && [ $((0$mode & 01000)) -eq 0 ]; then
            die $E_USAGE "$2 $1: $p is writable by others (mode $mode), who could swap what is unpacked there before it runs. Choose a folder only root can write to, e.g. $2 /root, or 'chmod go-w $p'"
        fi
        [ "$p" != / ] || return 0
        p=${p%/*}; [ -n "$p" ] || p=/
    done
}

# copy NAME FILE: section NAME into FILE, checked again as it is copied: what is unpacked
# and run is what was checked, whatever happens to the .bin meanwhile
copy() {
    section "$1"
    sum=$(stream "$1" | tee "$2" | sha256sum | awk '{print $1}')
    [ "$sum" = "$s_sha" ] || die $E_CORRUPT "section '$1' of $self changed while it was read (SHA-256 $sum, expected $s_sha). Copy the file again and compare it with SHA256SUMS."
    [ "$(wc -c <"$2")" -eq "$s_size" ] || die $E_SPACE "could not copy section '$1' into $(dirname "$2") (disk full?)"
}

# unpack ARCHIVE DIR [z]: only regular files and folders, with relative names that stay
# in DIR: no absolute path, no '..', no link, no device (the build makes no others, so
# anything else is a tampered file)
unpack() {
    bad=$(tar --numeric-owner -tv${3}f "$1" | awk '{
        type = substr($0, 1, 1); name = $0
        sub(/^[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ /, "", name)
        if (type != "-" && type != "d") { print "a link or special file: " name; exit }
        if (name ~ /^\// || name ~ /(^|\/)\.\.(\/|$)/) { print "a path outside: " name; exit }
    }') || die $E_CORRUPT "cannot read the archive $1"
    [ -z "$bad" ] || { rm -f "$1"; die $E_CORRUPT "$self holds an archive entry it must not ($bad): it was altered. Nothing was unpacked. Copy the file again and compare it with SHA256SUMS."; }
    tar --no-same-owner -x${3}f "$1" -C "$2" || die $E_SPACE "could not unpack into $2 (disk full?)"
    rm -f "$1"
}

unpack_runtime() {  # into the private folder $1
    copy runtime "$1/runtime.tar.gz"
    unpack "$1/runtime.tar.gz" "$1" z
}

# fresh DIR: DIR new (made here, 0700) or empty, and private: nothing planted in it can
# redirect what is written there
fresh() {
    if [ -e "$1" ] || [ -L "$1" ]; then
        [ -d "$1" ] && [ ! -L "$1" ] || die $E_USAGE "--extract $1 is not a folder: give a new or empty folder"
        [ -z "$(ls -A "$1")" ] || die $E_USAGE "--extract $1 is not empty: give a new or empty folder (nothing already there is written through)"
    else
        mkdir -p "$1" || die $E_USAGE "cannot create $1"
    fi
    private "$1" --extract
}

extract() {
    dir=$1
    section images
    fresh "$dir"
    room "$dir" $(((DB_TOTAL_SIZE * 3) / 1024 + 10240))
    copy manifest "$dir/manifest.json"
    unpack_runtime "$dir"
    mkdir "$dir/engine" && copy engine "$dir/engine.tar"
    unpack "$dir/engine.tar" "$dir/engine"
    copy images "$dir/images.tar"
    case " $DB_SECTIONS" in *" signature:"*) copy signature "$dir/manifest.json.sig" ;; esac
    say "DragonBall: unpacked into $dir: manifest.json dragonball/ engine/ images.tar"
}

target=${TMPDIR:-/tmp}
action=run
while [ $# -gt 0 ]; do
    case $1 in
        --help|-h) usage; exit 0 ;;
        --version) echo "DragonBall $DB_VERSION"; exit 0 ;;
        --target)
            [ $# -ge 2 ] || die $E_USAGE "--target needs a folder"
            target=$2; shift 2 ;;
        --target=*) target=${1#--target=}; shift ;;
        --verify|--info|--list) action=${1#--}; shift ;;
        --extract)
            [ $# -ge 2 ] || die $E_USAGE "--extract needs a folder"
            action=extract extract_dir=$2; shift 2 ;;
        --) shift; break ;;
        -*) die $E_USAGE "unknown option $1 (see --help)" ;;
        *) break ;;
    esac
done

verify
case $action in
    verify) say "DragonBall $DB_VERSION: $self is intact (size and every section's SHA-256)"; exit 0 ;;
    info) stream manifest; exit 0 ;;
    list)
        echo "DragonBall $DB_VERSION"
        for entry in $DB_SECTIONS; do
            echo "$entry" | awk -F: '{printf "section %-9s %12d bytes  sha256 %s\n", $1, $3, $4}'
        done
        cat <<'EOF'
@LIST@
EOF
        exit 0 ;;
    extract) extract "$extract_dir"; exit 0 ;;
esac

# the frozen runtime needs x86_64, and the build machine's glibc or newer unless it carries
# its own (floor "none": its own loader and C library, builder/loader.py)
arch=$(uname -m)
[ "$arch" = x86_64 ] || die $E_PLATFORM "this release runs on x86_64 servers, this one is $arch"
if [ "$DB_GLIBC_FLOOR" != none ]; then
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
[ -n "$glibc" ] || die $E_PLATFORM "no GNU C library found (getconf GNU_LIBC_VERSION): this release needs glibc $DB_GLIBC_FLOOR or newer"
awk -v have="$glibc" -v need="$DB_GLIBC_FLOOR" 'BEGIN {
    split(have, h, "."); split(need, n, ".")
    for (i = 1; i <= 3; i++) { if (h[i] + 0 > n[i] + 0) exit 0; if (h[i] + 0 < n[i] + 0) exit 1 }
    exit 0 }' || die $E_PLATFORM "this server has glibc $glibc, this release needs $DB_GLIBC_FLOOR or newer (Debian 12, Ubuntu 22.04 or later); --verify, --info and --extract still work here"
fi

[ -d "$target" ] || die $E_USAGE "--target $target is not a folder"
private "$target" --target
section runtime
room "$target" $((s_size * 4 / 1024 + 10240))
work=$(mktemp -d "$target/dragonball.XXXXXX") || die $E_SPACE "cannot create a folder in $target"
printf '#!/bin/sh\nexit 0\n' >"$work/probe" && chmod 700 "$work/probe"
"$work/probe" 2>/dev/null || die $E_SPACE "$target is mounted noexec, so the runtime cannot run there: use --target DIR with a folder that allows executing (e.g. --target /root)"
unpack_runtime "$work"
# a runtime with its own loader is started through it (its interpreter names the installed
# copy's, /opt/dragonball/runtime)
loader=$work/dragonball/_internal/ld-linux-x86-64.so.2
if [ -f "$loader" ]; then
    set -- "$loader" "$work/dragonball/dragonball" "$@"
else
    set -- "$work/dragonball/dragonball" "$@"
fi
DRAGONBALL_BIN=$self DRAGONBALL_BIN_SECTIONS=$DB_SECTIONS DRAGONBALL_BIN_VERIFIED=1 "$@"
status=$?
exit $status
