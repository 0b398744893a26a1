#!/bin/sh
# Installs fsgate's FreeSWITCH files into the container's conf tree with
# freeswitch-conf/install.sh (the operator's steps, the same script the
# real-switch tests run), then hands over to the image's own entrypoint.
# It changes no other stock setting.
#
# Mounted by docker/compose.yaml (read-only):
#   /fsgate/freeswitch-conf  <- freeswitch-conf/ of this repository
#   /fsgate/dialplan         <- dialplan/ of this repository
#   /fsgate/vars.fsgate.xml  <- docker/freeswitch/vars.fsgate.xml (env-based)
#
# FSGATE_CA_FILE (optional) is installed as the certs directory's cacert.pem.
# FSGATE_CONF_DIR (default /etc/freeswitch) and FSGATE_SRC_DIR (default
# /fsgate) move those places; with no command it only installs (the tests
# run it that way on the real switch's base configuration).
set -eu
CONF=${FSGATE_CONF_DIR:-/etc/freeswitch}
SRC=${FSGATE_SRC_DIR:-/fsgate}

# safarov/freeswitch's own entrypoint bootstraps the vanilla configuration
# when freeswitch.xml is missing; do it first so it never runs over our files.
if [ ! -f "$CONF/freeswitch.xml" ]; then
    mkdir -p "$CONF"
    cp -a /usr/share/freeswitch/conf/vanilla/. "$CONF/"
fi

FSGATE_DIALPLAN_DIR="$SRC/dialplan" sh "$SRC/freeswitch-conf/install.sh" "$CONF" "$SRC/vars.fsgate.xml"

# An https fsgate_url: mod_curl's `secure` trusts only cacert.pem in the
# certs directory (Debian packages: $CONF/tls). FSGATE_CA_FILE is the CA that
# signed the daemon's certificate; FSGATE_CERTS_DIR moves the directory.
if [ -n "${FSGATE_CA_FILE:-}" ]; then
    certs=${FSGATE_CERTS_DIR:-$CONF/tls}
    mkdir -p "$certs"
    cp "$FSGATE_CA_FILE" "$certs/cacert.pem"
fi

[ $# -eq 0 ] && exit 0
exec /docker-entrypoint.sh "$@"
