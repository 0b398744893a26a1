#!/bin/sh
# Installs fsgate's FreeSWITCH files into the container's conf tree, then
# hands over to the image's own entrypoint. Owns only copying files and one
# include line in vars.xml; it must not change any other stock setting.
#
# Mounted by docker/compose.yaml (read-only):
#   /fsgate/freeswitch-conf  <- freeswitch-conf/ of this repository
#   /fsgate/dialplan         <- dialplan/ of this repository
#   /fsgate/vars.fsgate.xml  <- docker/freeswitch/vars.fsgate.xml (env-based)
set -eu
CONF=/etc/freeswitch

# safarov/freeswitch's own entrypoint bootstraps the vanilla configuration
# when freeswitch.xml is missing; do it first so it never runs over our files.
if [ ! -f "$CONF/freeswitch.xml" ]; then
    mkdir -p "$CONF"
    cp -a /usr/share/freeswitch/conf/vanilla/. "$CONF/"
fi

mkdir -p "$CONF/autoload_configs" "$CONF/sip_profiles/external" "$CONF/dialplan/public"
cp /fsgate/freeswitch-conf/autoload_configs/*.xml "$CONF/autoload_configs/"
cp /fsgate/freeswitch-conf/sip_profiles/external/*.xml "$CONF/sip_profiles/external/"
cp /fsgate/dialplan/fsgate.xml "$CONF/dialplan/fsgate.xml"
cp /fsgate/dialplan/public/00_fsgate.xml "$CONF/dialplan/public/00_fsgate.xml"
cp /fsgate/vars.fsgate.xml "$CONF/vars.fsgate.xml"

# Include vars.fsgate.xml from vars.xml (once), right after <include>.
if ! grep -q 'data="vars.fsgate.xml"' "$CONF/vars.xml"; then
    sed -i '0,/<include>/s//<include>\n  <X-PRE-PROCESS cmd="include" data="vars.fsgate.xml"\/>/' "$CONF/vars.xml"
fi

exec /docker-entrypoint.sh "$@"
