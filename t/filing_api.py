#!/usr/bin/env python3
"""Stand-in for the external ICP filing API, used by the icp_gate tests.

    python3 t/filing_api.py --port N [--host ADDR] [--preset FILE.json] [--default MODE]
                            [--tag-icp] [--log-answers]

GET /v1/filing/<domain> answers according to the mode configured for the
domain (lower-cased), else the default mode.  /_control/* endpoints let a test
configure modes and see what the module sent.  Python 3 standard library only;
prints nothing to stdout, errors go to stderr.

Modes:
  filed, pending, revoked, unfiled
            200 {"domain": D, "status": MODE[, "icp": ICP][, "region": R]}
            (icp defaults to DEFAULT_ICP for "filed")
  404       404, empty body
  404page   404, an HTML page of 20000 bytes (longer than any answer read)
  500       500, body "oops"
  garbage   200, truncated JSON
  badstatus 200, {"status":"maybe"}
  notobject 200, ["filed"]
  hang      sleep HANG_SECONDS, then close without answering
  drip      200 and a filed answer, its body one byte every DRIP_SECONDS
Every mode first sleeps delay_ms when one is configured, plus a random
part of up to jitter_ms.  The mode and delay are those in force when the
request arrives: a mode changed while a request sleeps reaches the next one.

--tag-icp: every answer with a JSON verdict carries "icp": "api-SEQ", SEQ
being the request's number (1, 2, ... in order of arrival), so that a verdict
found later in Redis or in a node names the answer it came from.
--log-answers: every filing request is kept (see /_control/answers).

Control (GET or POST, parameters in the query string):
  /_control/set?domain=D&mode=M[&delay_ms=N][&jitter_ms=N][&icp=S][&region=R]
                               -> "ok"
  /_control/default?mode=M[&delay_ms=N][&jitter_ms=N]             -> "ok"
  /_control/next?domain=D&delay_ms=N[&mode=M]
                               -> "ok": the next request for D (one request;
                                  each call queues one more) sleeps N ms
                                  and answers M (default: the domain's mode)
  /_control/count?domain=D     -> integer, filing requests for D so far
  /_control/counts             -> JSON object domain -> count
  /_control/total              -> integer, all filing requests
  /_control/headers?domain=D   -> JSON object, last request's headers for D
  /_control/reset              -> clears counts and headers, keeps modes
  /_control/clear              -> clears counts, headers and modes
  /_control/answers[?since=SEQ][&domain=D]
                               -> JSON list of the filing requests after SEQ
                                  (with --log-answers): {"seq", "domain",
                                  "node" (its X-Node header), "mode",
                                  "delay_ms" (slept), "arrived",
                                  "answered" (Unix times, null while it
                                  sleeps), "status" (HTTP, 0: none),
                                  "verdict" (null: none), "icp"}
"""

import argparse
import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

FILING_PREFIX = "/v1/filing/"
CONTROL_PREFIX = "/_control/"
DEFAULT_ICP = "京ICP备12345678号-1"
HANG_SECONDS = 60
DRIP_SECONDS = 0.25

STATUS_MODES = ("filed", "pending", "revoked", "unfiled")
FIXED_ANSWERS = {
    # mode: (HTTP status, body)
    "404": (404, b""),
    "404page": (404, b"<html>" + b"x" * 19987 + b"</html>"),
    "500": (500, b"oops"),
    "garbage": (200, b'{"status": "filed"'),
    "badstatus": (200, b'{"status":"maybe"}'),
    "notobject": (200, b'["filed"]'),
}
MODES = STATUS_MODES + tuple(FIXED_ANSWERS) + ("hang", "drip")


class BadRequest(Exception):
    pass


def check_mode(mode):
    if mode not in MODES:
        raise BadRequest("unknown mode %r (one of %s)" % (mode, ", ".join(MODES)))
    return mode


def check_delay(value):
    try:
        delay = int(value)
    except (TypeError, ValueError):
        raise BadRequest("delay_ms must be an integer, not %r" % (value,))
    if delay < 0:
        raise BadRequest("delay_ms must not be negative")
    return delay


def make_entry(mode, delay_ms=0, icp=None, region=None, jitter_ms=0):
    """One domain's configuration, as the handler reads it."""
    entry = {"mode": check_mode(mode), "delay_ms": check_delay(delay_ms),
             "jitter_ms": check_delay(jitter_ms)}
    if icp is not None:
        entry["icp"] = icp
    if region is not None:
        entry["region"] = region
    return entry


class State:
    """Everything the tests configure or inspect; shared by all threads."""

    def __init__(self, default_mode, tag_icp=False, log_answers=False):
        self.lock = threading.Lock()
        self.default = make_entry(default_mode)
        self.domains = {}    # domain -> entry
        self.counts = {}     # domain -> number of filing requests
        self.headers = {}    # domain -> last request's headers
        self.next = {}       # domain -> [one-request entries], oldest first
        self.seq = 0         # filing requests so far
        self.tag_icp = tag_icp
        self.answers = [] if log_answers else None

    def arrive(self, domain, headers):
        """Counts a filing request; its entry (a one-request entry first)
        and its record for the answers' log (None without --log-answers)."""
        with self.lock:
            self.counts[domain] = self.counts.get(domain, 0) + 1
            self.headers[domain] = headers
            self.seq += 1
            queued = self.next.get(domain)
            entry = dict(queued.pop(0) if queued
                         else self.domains.get(domain, self.default))
            entry["seq"] = self.seq
            if entry.get("jitter_ms"):
                entry["delay_ms"] += random.randint(0, entry["jitter_ms"])
            if self.answers is None:
                return entry, None
            answer = {"seq": self.seq, "domain": domain,
                      "node": headers.get("x-node"), "mode": entry["mode"],
                      "delay_ms": entry["delay_ms"], "arrived": time.time(),
                      "answered": None, "status": 0, "verdict": None,
                      "icp": None}
            self.answers.append(answer)
            return entry, answer

    def answered(self, answer, status, verdict=None, icp=None):
        if answer is None:
            return
        with self.lock:
            answer.update(answered=time.time(), status=status,
                          verdict=verdict, icp=icp)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "filing-api-standin/1"
    # headers and body go out in two writes; with Nagle on, the body of an
    # answer on a reused connection waits for the client's delayed ACK (40 ms)
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    @property
    def state(self):
        return self.server.state

    def dispatch(self):
        self.discard_body()
        url = urlsplit(self.path)
        try:
            if url.path.startswith(FILING_PREFIX):
                self.filing(unquote(url.path[len(FILING_PREFIX):]))
            elif url.path.startswith(CONTROL_PREFIX):
                query = parse_qs(url.query, keep_blank_values=True)
                params = {name: values[-1] for name, values in query.items()}
                self.control(url.path[len(CONTROL_PREFIX):], params)
            else:
                self.reply(404, b"")
        except BadRequest as e:
            self.reply(400, str(e).encode() + b"\n")

    def discard_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)

    def reply(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reply_json(self, value):
        body = json.dumps(value, ensure_ascii=False).encode("utf-8")
        self.reply(200, body, "application/json")

    # --- the filing API itself

    def filing(self, requested):
        domain = requested.lower()
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        entry, logged = self.state.arrive(domain, headers)
        if entry["delay_ms"]:
            time.sleep(entry["delay_ms"] / 1000.0)

        mode = entry["mode"]
        if mode == "hang":
            time.sleep(HANG_SECONDS)
            self.close_connection = True
            self.state.answered(logged, 0)
            return
        if mode == "drip":
            self.drip(json.dumps({"domain": requested, "status": "filed"}).encode())
            self.state.answered(logged, 200, "filed")
            return
        if mode in FIXED_ANSWERS:
            status, body = FIXED_ANSWERS[mode]
            self.reply(status, body, "application/json")
            self.state.answered(logged, status,
                                "unfiled" if status == 404 else None)
            return

        answer = {"domain": requested, "status": mode}
        icp = entry.get("icp", DEFAULT_ICP if mode == "filed" else None)
        if self.state.tag_icp:
            icp = "api-%d" % entry["seq"]
        if icp is not None:
            answer["icp"] = icp
        if "region" in entry:
            answer["region"] = entry["region"]
        self.reply_json(answer)
        self.state.answered(logged, 200, mode, icp)

    def drip(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(DRIP_SECONDS)
        except OSError:
            pass    # the client gave up
        self.close_connection = True

    # --- control endpoints

    def control(self, action, params):
        state = self.state

        def need(name):
            if name not in params:
                raise BadRequest("missing parameter %s" % name)
            return params[name]

        if action == "set":
            domain = need("domain").lower()
            entry = make_entry(need("mode"), params.get("delay_ms", 0),
                               params.get("icp"), params.get("region"),
                               params.get("jitter_ms", 0))
            with state.lock:
                state.domains[domain] = entry
            self.reply(200, b"ok")
        elif action == "default":
            entry = make_entry(need("mode"), params.get("delay_ms", 0),
                               jitter_ms=params.get("jitter_ms", 0))
            with state.lock:
                state.default = entry
            self.reply(200, b"ok")
        elif action == "next":
            domain = need("domain").lower()
            with state.lock:
                entry = dict(state.domains.get(domain, state.default))
                if "mode" in params:
                    entry["mode"] = check_mode(params["mode"])
                entry["delay_ms"] = check_delay(need("delay_ms"))
                entry["jitter_ms"] = 0
                state.next.setdefault(domain, []).append(entry)
            self.reply(200, b"ok")
        elif action == "answers":
            since = check_delay(params.get("since", 0))
            domain = params.get("domain", "").lower()
            with state.lock:
                if state.answers is None:
                    raise BadRequest("start with --log-answers")
                found = [dict(a) for a in state.answers[since:]
                         if not domain or a["domain"] == domain]
            self.reply_json(found)
        elif action == "count":
            domain = need("domain").lower()
            with state.lock:
                count = state.counts.get(domain, 0)
            self.reply(200, str(count).encode())
        elif action == "counts":
            with state.lock:
                counts = dict(state.counts)
            self.reply_json(counts)
        elif action == "total":
            with state.lock:
                total = sum(state.counts.values())
            self.reply(200, str(total).encode())
        elif action == "headers":
            domain = need("domain").lower()
            with state.lock:
                headers = dict(state.headers.get(domain, {}))
            self.reply_json(headers)
        elif action == "reset":
            with state.lock:
                state.counts.clear()
                state.headers.clear()
            self.reply(200, b"ok")
        elif action == "clear":
            with state.lock:
                state.counts.clear()
                state.headers.clear()
                state.domains.clear()
                state.next.clear()
                state.default = make_entry("404")
            self.reply(200, b"ok")
        else:
            self.reply(404, b"unknown control action\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client that gives up (nginx timing out on "hang") is not an error.
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def load_preset(path):
    with open(path, encoding="utf-8") as f:
        preset = json.load(f)
    if not isinstance(preset, dict):
        raise ValueError("%s: expected a JSON object domain -> settings" % path)
    domains = {}
    for domain, settings in preset.items():
        if not isinstance(settings, dict):
            raise ValueError("%s: settings for %s must be an object" % (path, domain))
        domains[domain.lower()] = make_entry(
            settings.get("mode", "filed"), settings.get("delay_ms", 0),
            settings.get("icp"), settings.get("region"),
            settings.get("jitter_ms", 0))
    return domains


def main():
    parser = argparse.ArgumentParser(description="ICP filing API stand-in")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--preset", help="JSON object domain -> settings")
    parser.add_argument("--default", default="404", choices=MODES,
                        help="mode for domains not configured (default 404)")
    parser.add_argument("--tag-icp", action="store_true",
                        help='each verdict answered carries "icp": "api-SEQ"')
    parser.add_argument("--log-answers", action="store_true",
                        help="keep every filing request for /_control/answers")
    args = parser.parse_args()

    state = State(args.default, args.tag_icp, args.log_answers)
    if args.preset:
        try:
            state.domains.update(load_preset(args.preset))
        except (OSError, ValueError, BadRequest) as e:
            print("filing_api: bad preset: %s" % e, file=sys.stderr)
            return 2

    server = Server((args.host, args.port), Handler)
    server.state = state
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
