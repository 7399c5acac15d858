#!/bin/sh
# tbox on a Raspberry Pi with a CAN HAT: config.txt overlays, systemd-networkd CAN set-up, the agent's
# config and systemd unit, the venv. Idempotent: a second run with the same options changes nothing.
# Guide: docs/raspberry-pi.md. Run `board/rpi/install.sh --help` for the options.
set -eu

usage() {
    cat <<'EOF'
usage: sudo board/rpi/install.sh --profile PROFILE [options]

  --profile NAME|FILE   CAN HAT profile (board/rpi/profiles/NAME.toml or a TOML file); --list-profiles
  --name NAME           agent instance: /etc/tbox/NAME.toml, tbox-agent@NAME (default: tbox)
  --bitrate N           nominal CAN bit rate, bit/s (default: 500000)
  --data-bitrate N      CAN FD data-phase bit rate for FD profiles (default: 2000000)
  --restart-ms N        automatic restart after bus-off, ms; 0 disables it (default: 100)
  --prefix DIR          install into DIR instead of / (for tests and image builds): no user, no
                        packages, no venv, no systemctl
  --boot-config FILE    config.txt to edit, relative to the prefix (default: /boot/firmware/config.txt,
                        else /boot/config.txt)
  --no-venv             do not create/update the venv /opt/tbox/venv
  --extras LIST         tbox extras installed into the venv (default: mqtt; add sim for the simulator:
                        mqtt,sim)
  --venv                create/update the venv even under --prefix
  --no-apt              do not apt-get install missing packages (can-utils, python3-venv)
  --list-profiles       list the profiles and exit
EOF
}

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 2; }

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
PY=${TBOX_PYTHON:-python3}
PREFIX=/
PROFILE=
NAME=tbox
BITRATE=500000
DATA_BITRATE=2000000
RESTART_MS=100
BOOT_CONFIG=
VENV=auto
EXTRAS=mqtt
APT=yes

need_arg() { if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }
is_uint() { case $1 in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
is_pos() { is_uint "$1" && [ "$1" -gt 0 ]; }

while [ "$#" -gt 0 ]; do
    case $1 in
        --prefix) need_arg "$@"; PREFIX=$2; shift 2 ;;
        --profile) need_arg "$@"; PROFILE=$2; shift 2 ;;
        --name) need_arg "$@"; NAME=$2; shift 2 ;;
        --bitrate) need_arg "$@"; BITRATE=$2; shift 2 ;;
        --data-bitrate) need_arg "$@"; DATA_BITRATE=$2; shift 2 ;;
        --restart-ms) need_arg "$@"; RESTART_MS=$2; shift 2 ;;
        --boot-config) need_arg "$@"; BOOT_CONFIG=$2; shift 2 ;;
        --no-venv) VENV=no; shift ;;
        --extras) need_arg "$@"; EXTRAS=$2; shift 2 ;;
        --venv) VENV=yes; shift ;;
        --no-apt) APT=no; shift ;;
        --list-profiles) exec "$PY" "$HERE/rpi_profile.py" list ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option $1" ;;
    esac
done

# ----------------------------------------------------------------------------------------- checks
[ -n "$PROFILE" ] || { usage >&2; die "--profile is required (see --list-profiles)"; }
case $NAME in
    ''|-*|*[!A-Za-z0-9_-]*) die "--name must be letters, digits, _ or - (got '$NAME')" ;;
esac
is_pos "$BITRATE" || die "--bitrate must be a positive integer (got '$BITRATE')"
is_pos "$DATA_BITRATE" || die "--data-bitrate must be a positive integer"
case $EXTRAS in
    *[!a-z,]*) die "--extras is a comma-separated list such as mqtt,sim (got '$EXTRAS')" ;;
esac
is_uint "$RESTART_MS" || die "--restart-ms must be a non-negative integer (got '$RESTART_MS')"
[ -d "$PREFIX" ] || die "--prefix $PREFIX is not a directory"
R=$(cd "$PREFIX" && pwd)
[ "$R" = / ] && R=
LIVE=no
[ -z "$R" ] && LIVE=yes
if [ "$LIVE" = yes ] && [ "$(id -u)" != 0 ]; then
    die "installing into / needs root: sudo $0 ..."
fi
"$PY" -c 'import sys, tomllib; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$PY 3.11 or newer is needed (Raspberry Pi OS Bookworm has it)"

# rpi_profile.py names the file and key on stderr; a failure inside $(...) stops us through set -e
profile() { "$PY" "$HERE/rpi_profile.py" "$@" || exit 2; }
DESCRIPTION=$(profile field "$PROFILE" description)
IFACES=$(profile field "$PROFILE" interfaces)
FD=$(profile field "$PROFILE" fd)
MAX_BITRATE=$(profile field "$PROFILE" max_bitrate)
[ "$BITRATE" -le "$MAX_BITRATE" ] || die "--bitrate $BITRATE is above what profile $PROFILE supports ($MAX_BITRATE)"
PROFILE_NAME=$(basename "$PROFILE" .toml)
CHANNEL=${IFACES%% *}
say "profile $PROFILE_NAME: $DESCRIPTION"

# ------------------------------------------------------------------------------------- file helpers
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
CHANGED=0

# put_file SRC DEST MODE: DEST becomes SRC's content and MODE; untouched when already so.
put_file() {
    mkdir -p "$(dirname "$2")"
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        chmod "$3" "$2"
        say "unchanged $2"
        return 0
    fi
    cp "$1" "$2.tbox-tmp"
    chmod "$3" "$2.tbox-tmp"
    mv -f "$2.tbox-tmp" "$2"
    CHANGED=$((CHANGED + 1))
    say "wrote $2"
}

# render TEMPLATE OUT [IFACE]: fill in the @...@ placeholders.
render() {
    if [ "$FD" = yes ]; then
        dline="data_bitrate = $DATA_BITRATE           # CAN FD data-phase bit rate"
    else
        dline="# data_bitrate = 2000000         # CAN FD data phase (FD HATs only)"
    fi
    fdval=false
    [ "$FD" = yes ] && fdval=true
    sed -e "s|@NAME@|$NAME|g" -e "s|@CHANNEL@|$CHANNEL|g" -e "s|@BITRATE@|$BITRATE|g" \
        -e "s|@FD@|$fdval|g" -e "s|@DATA_BITRATE_LINE@|$dline|g" -e "s|@IFACE@|${3:-}|g" \
        -e "s|@PROFILE@|$PROFILE_NAME|g" -e "s|@RESTART_MS@|$RESTART_MS|g" "$1" > "$2"
}

# ----------------------------------------------------------------------------------- config.txt
if [ -n "$BOOT_CONFIG" ]; then
    BOOT=$R$BOOT_CONFIG
elif [ -f "$R/boot/firmware/config.txt" ]; then
    BOOT=$R/boot/firmware/config.txt      # Raspberry Pi OS Bookworm and later
elif [ -f "$R/boot/config.txt" ]; then
    BOOT=$R/boot/config.txt               # Bullseye and earlier
else
    die "no config.txt at $R/boot/firmware/config.txt or $R/boot/config.txt; pass --boot-config FILE"
fi
[ -f "$BOOT" ] || die "$BOOT does not exist"
[ -e "$BOOT.tbox-orig" ] || { cp -p "$BOOT" "$BOOT.tbox-orig"; say "saved the original as $BOOT.tbox-orig"; }
REBOOT=no
EDITED=$(profile config-txt "$PROFILE" "$BOOT")
case $EDITED in
    changed) REBOOT=yes; CHANGED=$((CHANGED + 1)); say "wrote the tbox block of $BOOT" ;;
    *) say "unchanged $BOOT" ;;
esac

# ------------------------------------------------------------------------------- systemd-networkd
for iface in $IFACES; do
    render "$HERE/systemd/80-tbox-can.network.in" "$TMP/net" "$iface"
    if [ "$FD" = yes ]; then
        printf 'FDMode=yes\nDataBitRate=%s\n' "$DATA_BITRATE" >> "$TMP/net"
    fi
    put_file "$TMP/net" "$R/etc/systemd/network/80-tbox-$iface.network" 0644
done

# ------------------------------------------------------------------------------ unit, data, config
put_file "$HERE/systemd/tbox-agent@.service" "$R/etc/systemd/system/tbox-agent@.service" 0644
for f in "$SRC"/dbc/*.dbc "$SRC"/dbc/*.toml; do
    if [ -f "$f" ]; then put_file "$f" "$R/opt/tbox/dbc/$(basename "$f")" 0644; fi
done
if [ -f "$SRC/docs/raspberry-pi.md" ]; then
    put_file "$SRC/docs/raspberry-pi.md" "$R/opt/tbox/share/raspberry-pi.md" 0644
fi

mkdir -p "$R/etc/tbox"
chmod 0750 "$R/etc/tbox"
render "$HERE/agent.toml.in" "$TMP/agent.toml"
CONFIG=$R/etc/tbox/$NAME.toml
NEW_CONFIG=no
if [ ! -e "$CONFIG" ]; then
    put_file "$TMP/agent.toml" "$CONFIG" 0640
    NEW_CONFIG=yes
elif cmp -s "$TMP/agent.toml" "$CONFIG"; then
    NEW_CONFIG=yes   # still the untouched template
    say "unchanged $CONFIG"
else
    say "kept your $CONFIG"
    put_file "$TMP/agent.toml" "$CONFIG.new" 0640
fi

mkdir -p "$R/usr/local/bin"
if [ "$(readlink "$R/usr/local/bin/tbox" 2>/dev/null || true)" != /opt/tbox/venv/bin/tbox ]; then
    ln -sfn /opt/tbox/venv/bin/tbox "$R/usr/local/bin/tbox"
    CHANGED=$((CHANGED + 1))
    say "linked $R/usr/local/bin/tbox -> /opt/tbox/venv/bin/tbox"
fi

# ------------------------------------------------------------------------ the live system only
if [ "$LIVE" = yes ]; then
    if [ "$APT" = yes ] && command -v apt-get >/dev/null 2>&1; then
        missing=
        for pkg in can-utils python3-venv; do
            dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
        done
        if [ -n "$missing" ]; then
            say "apt-get install$missing"
            # shellcheck disable=SC2086
            apt-get install -y $missing
        fi
    fi
    if ! id tbox >/dev/null 2>&1; then
        useradd --system --user-group --home-dir /var/lib/tbox --no-create-home \
            --shell /usr/sbin/nologin tbox
        say "created the system user tbox"
    fi
    chown root:tbox /etc/tbox "$CONFIG"
    if [ -e "$CONFIG.new" ]; then chown root:tbox "$CONFIG.new"; fi
fi
[ "$VENV" = auto ] && VENV=$LIVE
if [ "$VENV" = yes ]; then
    [ -x "$R/opt/tbox/venv/bin/python" ] || "$PY" -m venv "$R/opt/tbox/venv"
    spec=$SRC
    if [ -n "$EXTRAS" ]; then spec="${SRC}[${EXTRAS}]"; fi
    say "installing $spec into $R/opt/tbox/venv"
    "$R/opt/tbox/venv/bin/python" -m pip install --quiet --upgrade "$spec"
fi
if [ "$LIVE" = yes ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
    systemctl enable systemd-networkd.service
    if systemctl is-active --quiet systemd-networkd.service; then
        networkctl reload
    else
        systemctl start systemd-networkd.service
    fi
    systemctl enable "tbox-agent@$NAME.service"
    if [ "$NEW_CONFIG" = no ] && [ "$REBOOT" = no ]; then
        systemctl restart "tbox-agent@$NAME.service"
        say "restarted tbox-agent@$NAME"
    fi
fi

# -------------------------------------------------------------------------------------- summary
say "done: $CHANGED change(s)"
if [ "$NEW_CONFIG" = yes ]; then
    say "next: edit $CONFIG (vin, mapping, [uplink] host/port), then check it: tbox doctor --config /etc/tbox/$NAME.toml"
fi
if [ "$REBOOT" = yes ]; then
    say "next: reboot to load the CAN overlay ($BOOT changed); the service starts at boot"
elif [ "$NEW_CONFIG" = yes ]; then
    say "next: sudo systemctl start tbox-agent@$NAME; journalctl -u tbox-agent@$NAME -f"
fi
