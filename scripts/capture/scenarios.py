#!/usr/bin/env python3
"""The scenarios recorded into tests/fixtures/captures/ (the ones this
recorder added; the earlier recordings' rows are in that folder's README).

    scenarios.py --out DIR [--logs DIR] [--format plain|json|both] [NAME ...]

records each NAME (default: all) once per format as DIR/<fmt>-NAME.jsonl and
DIR/<fmt>-NAME.s2c.bin. It expects, in the same network namespace: FreeSWITCH
with the base conf plus the project's freeswitch-conf/ and dialplan/ (ESL on
127.0.0.1:8021, profile external on 127.0.0.1:5080, the carrier gateway to
127.0.0.1:5090) and nothing listening on 8080 or 5090: each scenario starts
its own route server (8080) and sipp far end (5090) and caller (5062).
record.sh sets all of that up. The sipp logs and the route lookups each
scenario received go to --logs.
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import esl_capture as ec  # noqa: E402

# Numbers of the recordings.
MASKED = "+15550100001"  # a masked number (route lookup: 200 or 404)
CONTROL = "15550109000"  # a call-control number (route lookup: 204, park)
CALLER = "+15557770001"  # the calling party
CALLEE = "+15557770002"  # the other party (the carrier's number)

# What fsgate answers for a live session (src/masking/dial.rs bridge_to).
BRIDGE = (
    "[origination_caller_id_number=+15550100001,origination_caller_id_name=+15550100001,"
    "sip_from_display=+15550100001,sip_cid_type=pid,exclude_outgoing_extra_header=.*,"
    "fsgate_tenant=acme,fsgate_session=ses_capture01]sofia/gateway/carrier/+15557770002"
)

# fsgate's click-to-call line (src/calls/dial.rs, test minimal_click_to_call).
A_UUID = "8438156f-f28b-45f8-9eff-0b7839c69aab"
B_UUID = "0a1b2c3d-0000-4000-8000-000000000001"
JOB_UUID = "207d3cdd-74a7-4ea4-a81e-e362423ac4f4"

# `show channels` / `show calls` read the core database, which the switch
# updates from a queue: a new row (or a new state) shows up some 0.3-0.7 s
# after the event. The scenarios wait this long before they ask.
SQL_LAG = 1.0


def click_to_call(extra_global=""):
    return (
        "originate {ignore_early_media=true%s}[origination_uuid=%s,fsgate_tenant=acme,"
        "origination_caller_id_number=+15557770002,sip_copy_custom_headers=false]"
        "sofia/gateway/carrier/+15557770001 &bridge([origination_uuid=%s,fsgate_tenant=acme,"
        "origination_caller_id_number=+15557770001]sofia/gateway/carrier/+15557770002)"
        % (extra_global, A_UUID, B_UUID)
    )


class Ctx:
    """What a scenario can start: sipp far ends and callers, the routes."""

    def __init__(self, logdir, name, route):
        self.logdir, self.name, self.route = logdir, name, route
        self.procs = []

    def uas(self, scenario):
        p = ec.uas(self.logdir, self.name, scenario)
        self.procs.append(p)
        time.sleep(0.3)  # bound before the switch calls it
        return p

    def uac(self, scenario, to, caller=CALLER, pause_ms=None):
        extra = ["-d", str(pause_ms)] if pause_ms is not None else []
        p = ec.uac(self.logdir, self.name, scenario, to, caller, extra)
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            p.stop()


SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__.replace("_", "-")] = fn
    return fn


def destroyed(rec, *uuids, timeout=20):
    for u in uuids:
        rec.wait_event("CHANNEL_DESTROY", u, after=0, timeout=timeout)


@scenario
def route_park_show_transfer(rec, s):
    """An inbound call to the call-control number: the route lookup answers
    204 and the call parks unanswered; 1 s later `show channels as json` and
    `show calls as json` with the parked row; `uuid_answer`; 1 s later `show
    channels as json` again; `uuid_transfer <uuid> fsgate_disconnected XML fsgate` (the
    fsgate context hangs up with NORMAL_CLEARING)."""
    s.route.routes = {CONTROL: (204, "")}
    s.uac("uac-wait", CONTROL)
    u = rec.wait_event("CHANNEL_CREATE").get("Unique-ID")
    rec.wait_event("CHANNEL_PARK", u)
    rec.quiet(SQL_LAG)
    rec.command("api show channels as json")
    rec.command("api show calls as json")
    rec.command("api uuid_answer " + u)
    rec.wait_event("CHANNEL_ANSWER", u)
    rec.quiet(SQL_LAG)
    rec.command("api show channels as json")
    rec.command("api uuid_transfer %s fsgate_disconnected XML fsgate" % u)
    destroyed(rec, u)


@scenario
def route_park_disconnect(rec, s):
    """The call-control call of route-park-show-transfer, disconnected while
    still parked and unanswered: `uuid_transfer <uuid> fsgate_disconnected
    XML fsgate` right after CHANNEL_PARK; the fsgate context hangs it up with
    NORMAL_CLEARING before answer."""
    s.route.routes = {CONTROL: (204, "")}
    s.uac("uac-wait", CONTROL)
    u = rec.wait_event("CHANNEL_CREATE").get("Unique-ID")
    rec.wait_event("CHANNEL_PARK", u)
    rec.command("api uuid_transfer %s fsgate_disconnected XML fsgate" % u)
    destroyed(rec, u)


@scenario
def route_bridge_show(rec, s):
    """An inbound call to a masked number: the lookup answers 200 with
    fsgate's dial string, the call is bridged through the carrier gateway to
    a UAS that answers; 1 s later `show channels as json` and `show calls as
    json` with both legs; the caller hangs up (BYE) 3 s after its ACK."""
    s.route.routes = {MASKED.lstrip("+"): (200, BRIDGE)}
    s.uas("uas-answer")
    s.uac("uac-bye", MASKED, pause_ms=3000)
    a = rec.wait_event("CHANNEL_CREATE").get("Unique-ID")
    rec.wait_event("CHANNEL_BRIDGE", a)
    rec.quiet(SQL_LAG)
    rec.command("api show channels as json")
    rec.command("api show calls as json")
    b = rec.wait_event("CHANNEL_HANGUP", after=0, timeout=20, **{"Call-Direction": "outbound"}).get("Unique-ID")
    destroyed(rec, a, b)


@scenario
def route_reject(rec, s):
    """An inbound call to a masked number the lookup refuses: 404 with body
    CALL_REJECTED; the dialplan hangs up with that cause (the caller gets a
    final SIP error)."""
    s.route.routes = {MASKED.lstrip("+"): (404, "CALL_REJECTED")}
    s.uac("uac-wait", MASKED)
    a = rec.wait_event("CHANNEL_CREATE").get("Unique-ID")
    destroyed(rec, a)


@scenario
def route_bridge_busy(rec, s):
    """An inbound call to a masked number, bridged (lookup 200) to a carrier
    that answers 486 Busy Here; continue_on_fail=false, so the caller's leg
    is hung up with the bridge's cause."""
    s.route.routes = {MASKED.lstrip("+"): (200, BRIDGE)}
    s.uas("uas-busy")
    s.uac("uac-wait", MASKED)
    a = rec.wait_event("CHANNEL_CREATE").get("Unique-ID")
    b = rec.wait_event("CHANNEL_CREATE").get("Unique-ID")
    destroyed(rec, b, a)


@scenario
def route_bridge_cancel(rec, s):
    """An inbound call to a masked number, bridged (lookup 200) to a carrier
    that rings (180) and never answers; the caller gives up with CANCEL 2 s
    after it hears ringing."""
    s.route.routes = {MASKED.lstrip("+"): (200, BRIDGE)}
    s.uas("uas-ring")
    s.uac("uac-cancel", MASKED, pause_ms=2000)
    a = rec.wait_event("CHANNEL_CREATE").get("Unique-ID")
    b = rec.wait_event("CHANNEL_CREATE").get("Unique-ID")
    destroyed(rec, a, b)


@scenario
def originate_bridge(rec, s):
    """fsgate's click-to-call: `bgapi originate {ignore_early_media=true}[…]
    sofia/gateway/carrier/+15557770001 &bridge([…]sofia/gateway/carrier/
    +15557770002)`, both parties answer, and the second party (B) hangs up
    (a BYE from the far end) 2 s after answering."""
    s.uas("uas-answer-bye")
    rec.command("bgapi " + click_to_call(), {"Job-UUID": JOB_UUID})
    rec.wait_event("BACKGROUND_JOB", after=0, timeout=20)
    rec.wait_event("CHANNEL_BRIDGE", A_UUID, after=0, timeout=20)
    destroyed(rec, B_UUID, A_UUID)


@scenario
def originate_no_answer(rec, s):
    """The click-to-call line with originate_timeout=3 added to its `{}`,
    to a carrier that rings and never answers: the originate times out
    (CANCEL to the carrier) and the BACKGROUND_JOB reports the failure."""
    s.uas("uas-ring")
    rec.command("bgapi " + click_to_call(",originate_timeout=3"), {"Job-UUID": JOB_UUID})
    rec.wait_event("BACKGROUND_JOB", after=0, timeout=20)
    destroyed(rec, A_UUID)


def record(outdir, logdir, name, fmt):
    capname = "%s-%s" % (fmt, name)
    route = ec.RouteServer({})
    s = Ctx(logdir, capname, route)
    rec = ec.Recorder(outdir, capname)
    try:
        rec.login(fmt)
        SCENARIOS[name](rec, s)
        rec.quiet(0.5)  # whatever trails (nothing should)
    finally:
        rec.close()
        s.close()
        route.close()
        with open(os.path.join(logdir, capname + ".route.json"), "w") as f:
            json.dump(route.requests, f, indent=1)
    time.sleep(1)  # let sipp's timewait and the switch settle between runs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--logs", default=None)
    ap.add_argument("--format", default="both", choices=["plain", "json", "both"])
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()
    logdir = args.logs or tempfile.mkdtemp(prefix="capture-logs.")
    os.makedirs(logdir, exist_ok=True)
    names = args.names or list(SCENARIOS)
    fmts = ["plain", "json"] if args.format == "both" else [args.format]
    for name in names:
        if name not in SCENARIOS:
            sys.exit("unknown scenario %s (known: %s)" % (name, ", ".join(SCENARIOS)))
    for name in names:
        for fmt in fmts:
            print("recording %s-%s" % (fmt, name), flush=True)
            record(args.out, logdir, name, fmt)
    print("logs in", logdir)


if __name__ == "__main__":
    main()
