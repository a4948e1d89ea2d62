#!/bin/sh
# Install netstat-collect on the board in one command, as root, from the source checkout:
#
#   sudo sh deploy/install.sh
#
# It creates the data group `netstat`, the users `netstat` (the collector) and
# `netstat-api` (the API), the setgid data directory /var/www/netstat-data, the log
# directory /var/log/netstat-collect, a virtual environment /opt/netstat-collect/venv
# with this checkout installed in it, /etc/netstat-collect/routers.json from the example
# (only if there is none), the cron file, the API's systemd unit and the nginx site, which
# takes the place of Debian's default site as nginx's default server (--uninstall puts it back).
# The old Go daemon's unit (router-stats.service), when present, is stopped and disabled;
# its data directory stays as it is, and the first run upgrades its files in place.
# Run it again (after a git pull, say): it changes only what differs, and says so.
# docs/install-by-hand.md has the same steps as single commands.
#
# Options:
#   --no-cron      skip the cron file (/etc/cron.d/netstat-collect)
#   --no-api       skip the API: no netstat-api user, no systemd unit
#   --no-nginx     skip the nginx site
#   --uninstall    remove what it installs, except the data directory and the configuration
#   --root DIR     write every file under DIR instead of / (for tests); the files still name
#                  the usual paths, users and group are still this machine's, and no service
#                  is started, stopped or reloaded
#   --python PATH  the Python for the virtual environment (default /usr/bin/python3, 3.10+)
#   -h, --help     this text
# The environment variables NETSTAT_INSTALL_ROOT and PYTHON do what --root and --python do.

set -eu
umask 022  # the venv and every file must be readable by the service users
PATH=$PATH:/usr/sbin:/sbin

PROGRAM=install.sh
SOURCE=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${NETSTAT_INSTALL_ROOT:-}
PYTHON=${PYTHON:-}
MODE=install
WITH_CRON=yes
WITH_API=yes
WITH_NGINX=yes

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

die() {
    printf '%s: error: %s\n' "$PROGRAM" "$*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case $1 in
        --uninstall) MODE=uninstall ;;
        --no-cron) WITH_CRON=no ;;
        --no-api) WITH_API=no ;;
        --no-nginx) WITH_NGINX=no ;;
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; shift ;;
        --root=*) ROOT=${1#--root=} ;;
        --python) [ $# -ge 2 ] || die "--python needs a path"; PYTHON=$2; shift ;;
        --python=*) PYTHON=${1#--python=} ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option: $1 (--help lists them)" ;;
    esac
    shift
done

[ "$(id -u)" -eq 0 ] || die "run it as root: sudo sh $0"

# R prefixes every path this script writes; empty for the real root.
R=
if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die "--root $ROOT: no such directory"
    R=$(cd "$ROOT" && pwd)
    [ "$R" != / ] || R=
fi

# Every name the installed files must agree on: deploy/crontab and deploy/gunicorn.service
# name the same users, group and paths (tests/test_install.py runs their command lines).
GROUP=netstat
COLLECTOR_USER=netstat
API_USER=netstat-api
OLD_UNIT=router-stats.service
API_UNIT=netstat-api.service
APP_DIR=$R/opt/netstat-collect
VENV=$APP_DIR/venv
STAMP=$APP_DIR/installed-from
CONF_DIR=$R/etc/netstat-collect
CONF=$CONF_DIR/routers.json
DATA_DIR=$R/var/www/netstat-data
LOG_DIR=$R/var/log/netstat-collect
CRON_FILE=$R/etc/cron.d/netstat-collect
UNIT_FILE=$R/etc/systemd/system/$API_UNIT
SITE=$R/etc/nginx/sites-available/netstat-api
SITE_LINK=$R/etc/nginx/sites-enabled/netstat-api
SITE_TARGET=../sites-available/netstat-api
DEFAULT_LINK=$R/etc/nginx/sites-enabled/default
DEFAULT_SAVED=$APP_DIR/nginx-default-site  # where DEFAULT_LINK pointed before the install

# Services are only started, stopped and reloaded through a running systemd on the real root.
if [ -z "$R" ] && [ -d /run/systemd/system ]; then SYSTEMD=yes; else SYSTEMD=no; fi
if command -v systemctl >/dev/null 2>&1; then SYSTEMCTL=yes; else SYSTEMCTL=no; fi

CHANGES=0
did() { CHANGES=$((CHANGES + 1)); printf '  %-10s %s\n' "$1" "$2"; }
same() { printf '  %-10s %s\n' "$1" "$2"; }
note() { printf '  note:      %s\n' "$*"; }

# mode, then owner:group, as stat prints them (2775 netstat:netstat)
mode_owner() { stat -c '%a %U:%G' "$1"; }

# Enablement as systemctl reads it from the unit files (works without a running systemd).
unit_enabled() {
    [ "$SYSTEMCTL" = yes ] || return 1
    [ "$(systemctl --root="${R:-/}" is-enabled "$1" 2>/dev/null || true)" = enabled ]
}

ensure_group() {
    if getent group "$GROUP" >/dev/null; then
        same unchanged "group $GROUP"
    else
        groupadd --system "$GROUP"
        did created "group $GROUP (the data group: collector and API)"
    fi
}

ensure_user() {  # name, what it is for
    if getent passwd "$1" >/dev/null; then
        same unchanged "user $1"
    else
        useradd --system --gid "$GROUP" --no-create-home --home-dir /nonexistent \
            --shell "$NOLOGIN" "$1"
        did created "user $1 ($2, group $GROUP)"
    fi
}

ensure_dir() {  # path, mode, owner, group, what it is for
    want="$2 $3:$4"
    if [ -d "$1" ]; then
        have=$(mode_owner "$1")
        if [ "$have" = "$want" ]; then
            same unchanged "$1 ($want)"
        else
            chown "$3:$4" "$1"
            chmod "$2" "$1"
            did updated "$1 ($want, was $have)"
        fi
    else
        install -d -m "$2" -o "$3" -g "$4" "$1"
        did created "$1 ($want: $5)"
    fi
}

# The Go daemon's files (or ours, after --uninstall removed the group) join the data group
# and become group-writable, so the collector and the API can both use them.
adopt_data_files() {
    for name in network_stats.db dhcp_leases.db; do
        for file in "$DATA_DIR/$name" "$DATA_DIR/$name-wal" "$DATA_DIR/$name-shm" \
                    "$DATA_DIR/$name-journal"; do
            adopt_file "$file"
        done
    done
    adopt_file "$DATA_DIR/.netstat-collect.lock"
}

adopt_file() {
    [ -f "$1" ] || return 0
    have=$(mode_owner "$1")
    if [ "$(stat -c %G "$1")" != "$GROUP" ]; then
        chown "$COLLECTOR_USER:$GROUP" "$1"
    fi
    if [ -z "$(find "$1" -prune -perm -g+rw)" ]; then
        chmod g+rw "$1"
    fi
    now=$(mode_owner "$1")
    if [ "$now" = "$have" ]; then
        same unchanged "$1 ($now)"
    else
        did updated "$1 ($now, was $have)"
    fi
}

FILE_CHANGED=no
install_file() {  # source, destination, what it is
    FILE_CHANGED=no
    if [ -f "$2" ] && cmp -s "$1" "$2" && [ "$(mode_owner "$2")" = "644 root:root" ]; then
        same unchanged "$2"
        return 0
    fi
    verb=created
    [ ! -e "$2" ] || verb=updated
    install -D -m 0644 -o root -g root "$1" "$2"
    FILE_CHANGED=yes
    did "$verb" "$2 ($3)"
}

remove_file() {  # path, what it is
    if [ -e "$1" ] || [ -L "$1" ]; then
        rm -f "$1"
        did removed "$1 ($2)"
    else
        same absent "$1"
    fi
}

remove_tree() {  # path, what it is
    if [ -e "$1" ]; then
        rm -rf "$1"
        did removed "$1 ($2)"
    else
        same absent "$1"
    fi
}

# What the venv holds: the Python it runs on and a hash of the files pip installs from.
# pip reinstalls a source directory every time; comparing this first keeps a second run
# from changing anything when nothing changed.
installed_from() {
    printf '# %s: what %s was installed from (deploy/install.sh compares it)\n' "$STAMP" "$VENV"
    printf 'python %s %s\n' "$PYTHON" "$("$PYTHON" -c 'import platform; print(platform.python_version())')"
    printf 'source %s\n' "$(cd "$SOURCE" && find pyproject.toml README.md collector api -type f \
        ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort | xargs sha256sum \
        | sha256sum | cut -d' ' -f1)"
}

VENV_CHANGED=no
ensure_venv() {
    want=$(installed_from)
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c '' 2>/dev/null && [ -f "$STAMP" ] \
            && [ "$(cat "$STAMP")" = "$want" ]; then
        same unchanged "$VENV (netstat-collect from $SOURCE)"
        return 0
    fi
    VENV_CHANGED=yes
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c '' 2>/dev/null \
            || ! grep -qxF "$(printf '%s\n' "$want" | grep '^python ')" "$STAMP" 2>/dev/null; then
        ensure_venv_module
        rm -rf "$VENV"
        install -d -m 0755 "$APP_DIR"
        "$PYTHON" -m venv "$VENV"
        did created "$VENV (Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'))"
    fi
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$SOURCE" \
        || die "pip could not install $SOURCE into $VENV (above)"
    printf '%s\n' "$want" >"$STAMP"
    did installed "netstat-collect from $SOURCE into $VENV"
}

ensure_venv_module() {
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null && return 0
    command -v apt-get >/dev/null 2>&1 || die "$PYTHON cannot create virtual environments (no venv/ensurepip)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
        || die "apt-get install python3-venv failed"
    did installed "package python3-venv"
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
        || die "$PYTHON still cannot create virtual environments after installing python3-venv"
}

stop_old_daemon() {
    found=
    for dir in etc/systemd/system lib/systemd/system usr/lib/systemd/system; do
        if [ -f "$R/$dir/$OLD_UNIT" ]; then found=$R/$dir/$OLD_UNIT; break; fi
    done
    [ -n "$found" ] || return 0
    if [ "$SYSTEMD" = yes ]; then
        if systemctl is-active --quiet "$OLD_UNIT" || unit_enabled "$OLD_UNIT"; then
            systemctl disable --now --quiet "$OLD_UNIT"
            did stopped "$OLD_UNIT, the old Go daemon, and disabled it (its data stays)"
        else
            same unchanged "$OLD_UNIT, the old Go daemon: stopped and disabled"
        fi
    elif unit_enabled "$OLD_UNIT"; then
        systemctl --root="${R:-/}" disable --quiet "$OLD_UNIT"
        did disabled "$OLD_UNIT, the old Go daemon (no running systemd here to stop it)"
    elif [ "$SYSTEMCTL" = yes ]; then
        same unchanged "$OLD_UNIT, the old Go daemon: disabled"
    else
        note "$found: the old Go daemon, and no systemctl to disable it: make sure it no longer runs"
    fi
}

install_api_unit() {
    install_file "$SOURCE/deploy/gunicorn.service" "$UNIT_FILE" "the API under gunicorn"
    if [ "$SYSTEMD" = no ]; then
        if [ -n "$R" ]; then
            note "installed under --root: $API_UNIT not enabled or started"
        else
            note "systemd is not running here (no /run/systemd/system): $API_UNIT is installed" \
                "but not enabled or started; on the board: systemctl enable --now $API_UNIT"
        fi
        return 0
    fi
    [ "$FILE_CHANGED" = no ] || systemctl daemon-reload
    if ! unit_enabled "$API_UNIT"; then
        systemctl enable --now --quiet "$API_UNIT"
        did started "$API_UNIT, enabled at boot"
    elif [ "$FILE_CHANGED" = yes ] || [ "$VENV_CHANGED" = yes ]; then
        systemctl restart "$API_UNIT"
        did restarted "$API_UNIT (new unit or code)"
    elif ! systemctl is-active --quiet "$API_UNIT"; then
        systemctl start "$API_UNIT"
        did started "$API_UNIT"
    else
        same unchanged "$API_UNIT: enabled and running"
    fi
}

# Our site is nginx's default server (it closes the connection for any name but ours); a
# second default server, such as Debian's welcome page, makes nginx refuse the configuration.
# The link is taken away and remembered, so --uninstall can put it back.
DEFAULT_REMOVED=no
disable_default_site() {
    [ -L "$DEFAULT_LINK" ] || [ -e "$DEFAULT_LINK" ] || return 0
    target=$(readlink "$DEFAULT_LINK" || true)
    case $target in
        "") file=$DEFAULT_LINK ;;
        /*) file=$R$target ;;
        *) file=$(dirname "$DEFAULT_LINK")/$target ;;
    esac
    if ! grep -qs 'default_server' "$file"; then
        same kept "$DEFAULT_LINK (not a default server)"
    elif [ -z "$target" ]; then
        note "$DEFAULT_LINK is a file and a second default server: move it away or drop its" \
            "default_server, then run this again"
    else
        printf '%s\n' "$target" >"$DEFAULT_SAVED"
        rm -f "$DEFAULT_LINK"
        DEFAULT_REMOVED=yes
        did disabled "$DEFAULT_LINK (a second default server, Debian's welcome page?; --uninstall puts it back)"
    fi
}

install_nginx_site() {
    install_file "$SOURCE/deploy/nginx.conf" "$SITE" "nginx in front of the API"
    site_changed=$FILE_CHANGED
    if [ -L "$SITE_LINK" ] && [ "$(readlink "$SITE_LINK")" = "$SITE_TARGET" ]; then
        same unchanged "$SITE_LINK"
    else
        install -d -m 0755 "$(dirname "$SITE_LINK")"
        ln -sfn "$SITE_TARGET" "$SITE_LINK"
        site_changed=yes
        did enabled "$SITE_LINK -> $SITE_TARGET"
    fi
    disable_default_site
    [ "$DEFAULT_REMOVED" = no ] || site_changed=yes
    if [ -n "$R" ]; then
        note "installed under --root: not checked with nginx -t, nginx not reloaded"
        return 0
    fi
    if ! checked=$(nginx -t 2>&1); then
        rm -f "$SITE_LINK"
        if [ "$DEFAULT_REMOVED" = yes ]; then ln -s "$(cat "$DEFAULT_SAVED")" "$DEFAULT_LINK"; fi
        printf '%s\n' "$checked" >&2
        die "nginx -t fails with the site enabled (above): disabled it again, nginx not reloaded"
    fi
    same checked "nginx -t: the configuration is valid"
    printf '%s\n' "$checked" | grep '\[warn\]' | while IFS= read -r warning; do note "$warning"; done
    [ "$site_changed" = yes ] || return 0
    if [ "$SYSTEMD" = yes ]; then
        systemctl try-reload-or-restart nginx.service
        did reloaded "nginx"
    else
        note "no running systemd here: reload nginx yourself if it runs (nginx -s reload)"
    fi
}

preflight_install() {
    grep -qs '^name = "netstat-collect"' "$SOURCE/pyproject.toml" \
        || die "$SOURCE is not a netstat-collect checkout (run deploy/install.sh from one)"
    for tool in getent groupadd useradd install stat cmp sha256sum find; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
    done
    if [ -z "$PYTHON" ]; then
        if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=$(command -v python3 || true); fi
    fi
    [ -x "${PYTHON:-/nonexistent}" ] || die "no python3 found: apt install python3 python3-venv"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
        || die "$PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())' \
               2>/dev/null || echo '?'); netstat-collect needs 3.10 or newer (--python PATH)"
    if [ "$WITH_NGINX" = yes ]; then
        [ -d "$R/etc/nginx" ] || die "nginx is not installed (apt install nginx-light), or pass --no-nginx"
        [ -n "$R" ] || command -v nginx >/dev/null 2>&1 \
            || [ -x /usr/sbin/nginx ] || die "no nginx binary to check the site with: apt install nginx-light"
    fi
    NOLOGIN=/usr/sbin/nologin
    [ -x "$NOLOGIN" ] || NOLOGIN=/sbin/nologin
    [ -x "$NOLOGIN" ] || NOLOGIN=/bin/false
}

do_install() {
    preflight_install
    echo "netstat-collect: installing from $SOURCE${R:+ under $R}"
    stop_old_daemon
    ensure_group
    ensure_user "$COLLECTOR_USER" "runs the collector from cron"
    [ "$WITH_API" = no ] || ensure_user "$API_USER" "runs the API under gunicorn"
    # setgid: files created inside keep the data group, whoever creates them.
    ensure_dir "$DATA_DIR" 2775 "$COLLECTOR_USER" "$GROUP" "the databases"
    adopt_data_files
    ensure_dir "$LOG_DIR" 755 "$COLLECTOR_USER" "$GROUP" "the collector's log"
    ensure_venv
    if [ -e "$CONF" ]; then
        same kept "$CONF (as it was)"
    else
        install -D -m 0644 -o root -g root "$SOURCE/config/routers.json" "$CONF"
        did created "$CONF (the example for 192.168.1.x: edit it)"
    fi
    if [ "$WITH_CRON" = yes ]; then
        install_file "$SOURCE/deploy/crontab" "$CRON_FILE" "run-once every 30 minutes as $COLLECTOR_USER"
    else
        same skipped "the cron file (--no-cron)"
    fi
    if [ "$WITH_API" = yes ]; then install_api_unit; else same skipped "the API (--no-api)"; fi
    if [ "$WITH_NGINX" = yes ]; then install_nginx_site; else same skipped "the nginx site (--no-nginx)"; fi

    if [ "$CHANGES" -eq 0 ]; then
        echo "netstat-collect: nothing to change, everything was in place."
    else
        echo "netstat-collect: installed ($CHANGES changes)."
    fi
    cat <<EOF
Next:
  1. Put your routers in $CONF (README, "Configuration").
  2. Check it before cron runs it; this fetches and computes but writes nothing:
     sudo -u $COLLECTOR_USER $VENV/bin/netstat-collect run-once --dry-run --config $CONF
EOF
}

do_uninstall() {
    echo "netstat-collect: uninstalling${R:+ under $R} (the data and the configuration stay)"
    if [ "$WITH_CRON" = yes ]; then remove_file "$CRON_FILE" "the cron file"; fi
    if [ "$WITH_API" = yes ]; then
        if [ "$SYSTEMD" = yes ] && { systemctl is-active --quiet "$API_UNIT" || unit_enabled "$API_UNIT"; }; then
            systemctl disable --now --quiet "$API_UNIT"
            did stopped "$API_UNIT, and disabled it"
        elif [ "$SYSTEMD" = no ] && unit_enabled "$API_UNIT"; then
            systemctl --root="${R:-/}" disable --quiet "$API_UNIT"
            did disabled "$API_UNIT"
        fi
        remove_file "$UNIT_FILE" "the API's unit"
        [ "$SYSTEMD" = no ] || systemctl daemon-reload
    fi
    if [ "$WITH_NGINX" = yes ]; then
        site_removed=$CHANGES
        if [ -L "$SITE_LINK" ] && [ "$(readlink "$SITE_LINK")" != "$SITE_TARGET" ]; then
            note "$SITE_LINK points elsewhere: left alone"
        else
            remove_file "$SITE_LINK" "the enabled nginx site"
        fi
        remove_file "$SITE" "the nginx site"
        if [ -f "$DEFAULT_SAVED" ] && [ ! -L "$DEFAULT_LINK" ] && [ ! -e "$DEFAULT_LINK" ]; then
            ln -s "$(cat "$DEFAULT_SAVED")" "$DEFAULT_LINK"
            did restored "$DEFAULT_LINK -> $(cat "$DEFAULT_SAVED") (as before the install)"
        fi
        if [ "$CHANGES" -ne "$site_removed" ] && [ -z "$R" ] && [ "$SYSTEMD" = yes ]; then
            nginx -t >/dev/null 2>&1 && systemctl try-reload-or-restart nginx.service && did reloaded nginx
        fi
    fi
    remove_tree "$APP_DIR" "the virtual environment"
    remove_tree "$LOG_DIR" "the collector's log"
    group_existed=no
    if getent group "$GROUP" >/dev/null; then group_existed=yes; fi
    for user in "$API_USER" "$COLLECTOR_USER"; do
        [ "$user" != "$API_USER" ] || [ "$WITH_API" = yes ] || continue
        if getent passwd "$user" >/dev/null; then
            userdel "$user" || die "could not remove user $user (is one of its processes running?)"
            did removed "user $user"
        else
            same absent "user $user"
        fi
    done
    if gid=$(getent group "$GROUP" | cut -d: -f3) && [ -n "$gid" ]; then
        if getent passwd | awk -F: -v gid="$gid" '$4 == gid { found = 1 } END { exit !found }'; then
            note "group $GROUP kept: it is still a user's primary group"
        else
            groupdel "$GROUP"
            did removed "group $GROUP"
        fi
    elif [ "$group_existed" = yes ]; then
        did removed "group $GROUP (userdel took it with user $COLLECTOR_USER)"
    else
        same absent "group $GROUP"
    fi
    same kept "$DATA_DIR (the data; a new install adopts it again)"
    same kept "$CONF_DIR (the configuration)"
    if [ "$CHANGES" -eq 0 ]; then
        echo "netstat-collect: nothing to remove."
    else
        echo "netstat-collect: uninstalled ($CHANGES removals)."
    fi
}

if [ "$MODE" = install ]; then do_install; else do_uninstall; fi
