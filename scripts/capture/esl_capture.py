"""Recording of FreeSWITCH Event Socket traffic, in the format of
tests/fixtures/captures/README.md, plus the little helpers the scenarios need
(a route-lookup HTTP server and sipp user agents).

The recorder is an ESL client that logs every chunk both ways:

- NAME.jsonl: one line per socket read (server to client) and one per command
  sent (client to server), in the order they happened:
  {"t": seconds since connect (4 decimals), "dir": "c2s" | "s2c", "data": "..."}
  ("data" is the chunk decoded as UTF-8; a multi-byte character split across
  two reads is carried to the next line, which never happens with ESL's
  URL-encoded or JSON-escaped ASCII).
- NAME.s2c.bin: every byte the server sent, concatenated.

A reader thread owns the socket's receive side: it logs each recv() as it
returns and splits the stream into frames, which the scenario waits on with
wait_reply / wait_event. Nothing but the recorder writes to the socket.

Python 3 standard library only. Run it (and FreeSWITCH, sipp) inside the
capture network namespace: see README.md next to this file.
"""

import codecs
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))

# The subscription of every recording (README of the captures).
EVENTS = (
    "CHANNEL_CREATE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER "
    "CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_PARK CHANNEL_UNPARK CHANNEL_EXECUTE "
    "CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_DESTROY "
    "BACKGROUND_JOB HEARTBEAT"
)


class Frame:
    """One ESL frame: outer headers, body, and (for events) the event headers."""

    def __init__(self, headers, body):
        self.headers = headers
        self.body = body
        self.event = None
        ct = headers.get("Content-Type", "")
        if ct == "text/event-json":
            self.event = json.loads(body.decode())
        elif ct == "text/event-plain":
            text = body.decode()
            head = text.split("\n\n", 1)[0]
            ev = {}
            for line in head.split("\n"):
                if ": " in line:
                    k, v = line.split(": ", 1)
                    ev.setdefault(k, urllib.parse.unquote(v))
            self.event = ev

    @property
    def content_type(self):
        return self.headers.get("Content-Type", "")

    def name(self):
        return (self.event or {}).get("Event-Name", "")

    def get(self, key):
        return (self.event or {}).get(key)

    def __repr__(self):
        if self.event is not None:
            return "<%s %s>" % (self.name(), self.get("Unique-ID"))
        return "<%s %r %r>" % (self.content_type, self.headers.get("Reply-Text"), self.body[:60])


def split_frames(buf):
    """Splits complete frames off buf (a bytearray); returns them."""
    out = []
    while True:
        end = buf.find(b"\n\n")
        if end < 0:
            return out
        head = buf[:end].decode()
        headers = {}
        for line in head.split("\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k] = v.strip()
        n = int(headers.get("Content-Length", "0"))
        if len(buf) < end + 2 + n:
            return out
        body = bytes(buf[end + 2 : end + 2 + n])
        del buf[: end + 2 + n]
        out.append(Frame(headers, body))


class Recorder:
    """An ESL client that records NAME.jsonl and NAME.s2c.bin under outdir."""

    def __init__(self, outdir, name, host="127.0.0.1", port=8021):
        self.jsonl = open(os.path.join(outdir, name + ".jsonl"), "w")
        self.bin = open(os.path.join(outdir, name + ".s2c.bin"), "wb")
        self.lock = threading.Condition()
        self.frames = []  # every s2c frame, in order
        self.cursor = 0  # frames before this index have been looked at by waits
        self.closed = False
        self.sock = socket.create_connection((host, port))
        self.t0 = time.monotonic()
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _log(self, direction, data):
        line = {"t": round(time.monotonic() - self.t0, 4), "dir": direction, "data": data}
        self.jsonl.write(json.dumps(line) + "\n")
        self.jsonl.flush()

    def _read(self):
        buf = bytearray()
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            with self.lock:
                if not chunk:
                    self.closed = True
                    self.lock.notify_all()
                    return
                self.bin.write(chunk)
                self.bin.flush()
                self._log("s2c", self.decoder.decode(chunk))
                buf.extend(chunk)
                self.frames.extend(split_frames(buf))
                self.lock.notify_all()

    # ----- sending ---------------------------------------------------------

    def send(self, command, headers=None):
        """Sends one command (plus extra header lines); logs it first, under
        the lock, so that the log order is the order on the wire."""
        text = command
        for k, v in (headers or {}).items():
            text += "\n%s: %s" % (k, v)
        text += "\n\n"
        with self.lock:
            self._log("c2s", text)
            self.sock.sendall(text.encode())

    def command(self, command, headers=None, timeout=10):
        """Sends a command and returns its reply (command/reply or api/response)."""
        start = self.mark()
        self.send(command, headers)
        return self.wait_reply(after=start, timeout=timeout)

    # ----- waiting ---------------------------------------------------------

    def mark(self):
        """The number of frames received so far (for `after=`)."""
        with self.lock:
            return len(self.frames)

    def wait_for(self, pred, after=None, timeout=10, what="frame"):
        """The first frame at or after index `after` (default: the cursor)
        for which pred(frame) is true; moves the cursor past it."""
        deadline = time.monotonic() + timeout
        with self.lock:
            i = self.cursor if after is None else after
            while True:
                while i < len(self.frames):
                    f = self.frames[i]
                    i += 1
                    if pred(f):
                        self.cursor = max(self.cursor, i)
                        return f
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise TimeoutError("no %s within %ss; got %r" % (what, timeout, self.frames[-8:]))
                self.lock.wait(left)

    def wait_reply(self, after=None, timeout=10):
        return self.wait_for(
            lambda f: f.content_type in ("command/reply", "api/response", "auth/request"),
            after=after,
            timeout=timeout,
            what="reply",
        )

    def wait_event(self, name, uuid=None, after=None, timeout=10, **match):
        """Waits for an event by name (and Unique-ID, and other header values)."""

        def pred(f):
            if f.event is None or f.name() != name:
                return False
            if uuid is not None and f.get("Unique-ID") != uuid:
                return False
            return all(f.get(k) == v for k, v in match.items())

        return self.wait_for(pred, after=after, timeout=timeout, what="%s %s %s" % (name, uuid or "", match))

    def quiet(self, seconds):
        """Lets the switch talk for a while (events keep being recorded)."""
        time.sleep(seconds)

    # ----- session ---------------------------------------------------------

    def login(self, fmt, password="ClueCon"):
        """auth/request, auth, and the subscription of every recording."""
        self.wait_for(lambda f: f.content_type == "auth/request", after=0, what="auth/request")
        reply = self.command("auth " + password)
        assert reply.headers.get("Reply-Text") == "+OK accepted", reply
        reply = self.command("event %s %s" % (fmt, EVENTS))
        assert reply.headers.get("Reply-Text", "").startswith("+OK"), reply

    def close(self):
        """`exit` is not sent: the recording ends with the last event."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.reader.join(2)
        with self.lock:
            self.jsonl.close()
            self.bin.close()


class RouteServer:
    """The daemon's route lookup, as a tiny HTTP server on 127.0.0.1:8080:
    GET /v1/dialplan/route?masked=<digits>&... answers from `routes`
    (masked digits -> (status, body)); anything else 404 UNALLOCATED_NUMBER.
    Every request is kept in `requests` (path and headers)."""

    def __init__(self, routes, host="127.0.0.1", port=8080):
        self.routes = dict(routes)
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                server.requests.append({"path": self.path, "headers": dict(self.headers)})
                masked = q.get("masked", [""])[0]
                status, body = server.routes.get(masked, (404, "UNALLOCATED_NUMBER"))
                data = body.encode()
                self.send_response(status)
                if status != 204:
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if status != 204:
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Sipp:
    """A sipp process with one of the scenarios in sipp/ (or a built-in one)."""

    def __init__(self, args, logdir, name):
        self.log = open(os.path.join(logdir, name + ".sipp.log"), "w")
        self.proc = subprocess.Popen(["sipp"] + args, stdout=self.log, stderr=subprocess.STDOUT, cwd=logdir)

    @staticmethod
    def scenario(name):
        return os.path.join(HERE, "sipp", name + ".xml")

    def wait(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def uas(logdir, name, scenario, port=5090):
    """A far end (the carrier) on 127.0.0.1:port running sipp/<scenario>.xml."""
    return Sipp(["-sf", Sipp.scenario(scenario), "-p", str(port), "-i", "127.0.0.1", "-nostdin",
                 "-trace_err", "-m", "100"], logdir, name + ".uas")


def uac(logdir, name, scenario, to, caller, extra=()):
    """One inbound call from `caller` to `to` at the switch (127.0.0.1:5080)."""
    args = ["-sf", Sipp.scenario(scenario), "-s", to, "-key", "caller", caller, "-p", "5062",
            "-i", "127.0.0.1", "-m", "1", "-nostdin", "-trace_err"] + list(extra) + ["127.0.0.1:5080"]
    return Sipp(args, logdir, name + ".uac")
