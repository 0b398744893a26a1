#!/bin/sh
# install.sh CONF_DIR [VARS_FILE]
#
# Installs fsgate's FreeSWITCH files (this folder and ../dialplan) into an
# existing FreeSWITCH configuration directory: the steps README.md lists, in
# the same order, and nothing else. The real-switch tests and the Docker
# entrypoint run this very script, so what is tested is what an operator does.
#
#   CONF_DIR   the conf tree (/etc/freeswitch on Debian packages,
#              /usr/local/freeswitch/conf from source)
#   VARS_FILE  the vars.fsgate.xml to install (default: the one beside this
#              script; docker/freeswitch/ has one that reads the environment)
#
# Safe to run again: files are replaced, include lines are added once.
# POSIX sh, so that it runs in slim container images too.
set -eu

usage() { echo "usage: $0 CONF_DIR [VARS_FILE]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
conf=$1
here=$(cd "$(dirname "$0")" && pwd)
dialplan=${FSGATE_DIALPLAN_DIR:-$here/../dialplan}
vars=${2:-$here/vars.fsgate.xml}

fail() { echo "install.sh: $*" >&2; exit 1; }
[ -f "$conf/freeswitch.xml" ] || fail "$conf has no freeswitch.xml: not a FreeSWITCH conf directory"
[ -f "$conf/vars.xml" ] || fail "$conf has no vars.xml"
[ -f "$vars" ] || fail "no such vars file: $vars"
[ -f "$dialplan/public/00_fsgate.xml" ] || fail "no dialplan at $dialplan"

# 1. The variables, included from vars.xml (once, right after <include>).
cp "$vars" "$conf/vars.fsgate.xml"
if ! grep -q 'data="vars.fsgate.xml"' "$conf/vars.xml"; then
    sed -i '0,/<include>/s//<include>\n  <X-PRE-PROCESS cmd="include" data="vars.fsgate.xml"\/>/' "$conf/vars.xml"
fi

# 2. Event Socket, ACL, modules and mod_curl settings (replacing the stock files).
mkdir -p "$conf/autoload_configs"
cp "$here"/autoload_configs/*.xml "$conf/autoload_configs/"

# 3. The carrier gateway, in the external profile's gateway folder. The stock
#    external.xml includes external/*.xml inside <gateways>; a profile that
#    does not gets that include line added.
mkdir -p "$conf/sip_profiles/external"
cp "$here"/sip_profiles/external/*.xml "$conf/sip_profiles/external/"
profile="$conf/sip_profiles/external.xml"
[ -f "$profile" ] || fail "$profile missing: the carrier gateway needs the external SIP profile"
if ! grep -q 'data="external/\*.xml"' "$profile"; then
    grep -q '<gateways>' "$profile" || fail "$profile has no <gateways> element to include external/*.xml in"
    sed -i '0,/<gateways>/s//<gateways>\n    <X-PRE-PROCESS cmd="include" data="external\/*.xml"\/>/' "$profile"
fi

# 4. The dialplan: the route lookup in the public context, the fsgate context.
mkdir -p "$conf/dialplan/public"
cp "$dialplan/public/00_fsgate.xml" "$conf/dialplan/public/00_fsgate.xml"
cp "$dialplan/fsgate.xml" "$conf/dialplan/fsgate.xml"

echo "fsgate files installed into $conf; set the values in $conf/vars.fsgate.xml, then restart FreeSWITCH"
