#!/usr/bin/env python3
"""Stand-in for the external ICP filing API, used by the icp_gate tests.

    python3 t/filing_api.py --port N [--host ADDR] [--preset FILE.json] [--default MODE]
                            [--tag-icp] [--log-answers]

GET /v1/filing/<domain> answers according to the mode configured for the
domain (lower-cased), else the default mode.  /<shape>/... answers the same
modes as one of the real filing sources would (SHAPES below), the domain
taken from the query (domain=, DomainName=) or the body (a form's domain=,
JSON's "domain" or Tencent's Filters[0].Value[0]); /any/... finds the
domain so and answers as /v1/filing/ does.  /_control/* endpoints let a test
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
  raw       the body= and code= set for the domain, as they are
  apierror  the shape's own error (the native shape: 500)
  error200  the shape's own error in a 200 (where the source sends another
            status for it, what a gateway or a throttle sends in a 200)
  missing   the shape's answer without its status field
  oddvalue  the shape's status field with a value no profile maps
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
                              [&body=TEXT][&code=N]
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
  /_control/request?domain=D   -> JSON object, last request for D: "method",
                                  "path", "query", "body"
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
# what a shape's answer says; "raw" answers the body and code set for it
SHAPE_MODES = ("apierror", "error200", "missing", "oddvalue")
MODES = (STATUS_MODES + tuple(FIXED_ANSWERS) + ("hang", "drip", "raw")
         + SHAPE_MODES)


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


def make_entry(mode, delay_ms=0, icp=None, region=None, jitter_ms=0,
               body=None, code=None):
    """One domain's configuration, as the handler reads it."""
    entry = {"mode": check_mode(mode), "delay_ms": check_delay(delay_ms),
             "jitter_ms": check_delay(jitter_ms)}
    if body is not None:
        entry["body"] = body
    if code is not None:
        entry["code"] = check_delay(code)
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
        self.requests = {}   # domain -> last request's method, path, body
        self.next = {}       # domain -> [one-request entries], oldest first
        self.seq = 0         # filing requests so far
        self.tag_icp = tag_icp
        self.answers = [] if log_answers else None

    def arrive(self, domain, headers, request=None):
        """Counts a filing request; its entry (a one-request entry first)
        and its record for the answers' log (None without --log-answers)."""
        with self.lock:
            self.counts[domain] = self.counts.get(domain, 0) + 1
            self.headers[domain] = headers
            self.requests[domain] = request or {}
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
        self.read_body()
        url = urlsplit(self.path)
        shape = url.path.strip("/").split("/")[0]
        try:
            if url.path.startswith(FILING_PREFIX):
                self.filing(unquote(url.path[len(FILING_PREFIX):]))
            elif shape in SHAPES:
                self.filing(shaped_domain(url, self.body), shape)
            elif shape == "any":
                self.filing(shaped_domain(url, self.body))
            elif url.path.startswith(CONTROL_PREFIX):
                query = parse_qs(url.query, keep_blank_values=True)
                params = {name: values[-1] for name, values in query.items()}
                self.control(url.path[len(CONTROL_PREFIX):], params)
            else:
                self.reply(404, b"")
        except BadRequest as e:
            self.reply(400, str(e).encode() + b"\n")

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length > 0 else b""

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

    def filing(self, requested, shape=None):
        domain = requested.lower()
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        url = urlsplit(self.path)
        request = {"method": self.command, "path": url.path,
                   "query": url.query,
                   "body": self.body.decode("utf-8", "replace")}
        entry, logged = self.state.arrive(domain, headers, request)
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
        if mode == "raw":
            code = entry.get("code", 200)
            self.reply(code, entry.get("body", "").encode("utf-8"),
                       "application/json")
            self.state.answered(logged, code)
            return
        if shape is not None and (mode in STATUS_MODES or mode in SHAPE_MODES):
            code, answer = SHAPES[shape](requested, mode, entry)
            if mode == "error200":
                code = 200
            self.reply(code, json.dumps(answer, ensure_ascii=False)
                       .encode("utf-8"), "application/json")
            self.state.answered(logged, code,
                                mode if mode in STATUS_MODES else None)
            return
        if mode in SHAPE_MODES:
            mode = {"apierror": "500", "missing": "notobject",
                    "oddvalue": "badstatus"}[mode]
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
                               params.get("jitter_ms", 0),
                               params.get("body"), params.get("code"))
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
        elif action == "request":
            domain = need("domain").lower()
            with state.lock:
                request = dict(state.requests.get(domain, {}))
            self.reply_json(request)
        elif action == "reset":
            with state.lock:
                state.counts.clear()
                state.headers.clear()
            self.reply(200, b"ok")
        elif action == "clear":
            with state.lock:
                state.counts.clear()
                state.headers.clear()
                state.requests.clear()
                state.domains.clear()
                state.next.clear()
                state.default = make_entry("404")
            self.reply(200, b"ok")
        else:
            self.reply(404, b"unknown control action\n")


# --- what real filing sources answer (their public documentation's field
# names); each: (domain, mode, entry) -> (HTTP status, JSON value)

def shaped_domain(url, body):
    query = parse_qs(url.query)
    for name in ("domain", "DomainName"):
        if name in query:
            return query[name][-1]
    text = body.decode("utf-8", "replace")
    try:
        value = json.loads(text)
    except ValueError:
        form = parse_qs(text)
        return form.get("domain", [""])[-1]
    if isinstance(value, dict):
        if "domain" in value:
            return str(value["domain"])
        try:
            return str(value["Filters"][0]["Value"][0])
        except (KeyError, IndexError, TypeError):
            pass
    return ""


def aliyun(domain, mode, entry):
    """Alibaba Cloud CDN CheckCdnDomainICP."""
    request_id = "5C7E0E1E-0D2A-4C8B-9C2B-2B2F6B1E3C4D"
    if mode == "error200":
        return 200, {"RequestId": request_id, "HostId": "cdn.aliyuncs.com",
                     "Code": "Throttling.User",
                     "Message": "Request was denied due to user flow control."}
    if mode == "apierror":
        return 400, {"RequestId": request_id, "HostId": "cdn.aliyuncs.com",
                     "Code": "CheckDomainICPFail",
                     "Message": "Check domain ICP failed."}
    if mode == "missing":
        return 200, {"RequestId": request_id}
    status = {"filed": "DomainIsRegistration",
              "oddvalue": "DomainIsChecking"}.get(mode, "DomainNotRegistration")
    return 200, {"RequestId": request_id, "Status": status}


def tencent(domain, mode, entry):
    """Tencent Cloud CDN DescribeDomains (BriefDomain)."""
    request_id = "ab4f1426-ea15-4dc2-97d5-1b5a3f2e6c1a"
    if mode in ("apierror", "error200"):
        return 200, {"Response": {"Error": {
            "Code": "AuthFailure.SignatureFailure",
            "Message": "The provided credentials could not be validated."},
            "RequestId": request_id}}
    if mode == "missing":
        return 200, {"Response": {"Domains": [], "TotalNumber": 0,
                                  "RequestId": request_id}}
    disable = {"filed": "normal", "oddvalue": "overdue"}.get(mode, "unlicensed")
    brief = {"ResourceId": "cdn-4k2x9q0f", "AppId": 1250000000,
             "Domain": domain, "Cname": domain + ".cdn.dnsv1.com",
             "Status": "online" if mode == "filed" else "rejected",
             "ProjectId": 0, "ServiceType": "live", "Disable": disable,
             "Area": entry.get("region", "mainland")}
    return 200, {"Response": {"Domains": [brief], "TotalNumber": 1,
                              "RequestId": request_id}}


def miit(domain, mode, entry):
    """A service built on MIIT's public query."""
    if mode in ("apierror", "error200"):
        return 200, {"code": 500, "msg": "查询过于频繁，请稍后再试"}
    if mode == "missing":
        return 200, {"code": 0, "msg": "ok", "data": {}}
    if mode == "oddvalue":
        return 200, {"code": 0, "msg": "ok", "data": {"isRecorded": "unknown"}}
    if mode != "filed":
        return 200, {"code": 0, "msg": "ok", "data": {"isRecorded": False}}
    return 200, {"code": 0, "msg": "ok", "data": {
        "isRecorded": True, "domain": entry.get("answer_domain", domain),
        "mainLicence": "京ICP备10046444号",
        "serviceLicence": entry.get("icp", "京ICP备10046444号-9"),
        "natureName": "企业", "unitName": "北京示例科技有限公司",
        "updateRecordTime": "2021-08-16 13:55:56"}}


def thirdparty(domain, mode, entry):
    """A third-party query API."""
    if mode in ("apierror", "error200"):
        return 200, {"code": 403, "msg": "余额不足"}
    if mode == "missing":
        return 200, {"code": 200, "msg": "success", "data": {}}
    if mode == "oddvalue":
        return 200, {"code": 200, "msg": "success", "data": {"exists": 2}}
    if mode != "filed":
        return 200, {"code": 200, "msg": "success", "data": {"exists": False}}
    return 200, {"code": 200, "msg": "success", "data": {
        "exists": True, "number": entry.get("icp", "粤ICP备2020012345号-1"),
        "type": "enterprise"}}


def jdcloud(domain, mode, entry):
    """JD Cloud live checkDomainIcp."""
    request_id = "c3pm0t3hq5ehdh2f0emdjcfd7bhp1qpu"
    if mode in ("apierror", "error200"):
        return 400, {"requestId": request_id, "error": {
            "code": 400, "status": "INVALID_ARGUMENT",
            "message": "domain is invalid"}}
    if mode == "missing":
        return 200, {"requestId": request_id, "result": {}}
    if mode == "oddvalue":
        return 200, {"requestId": request_id, "result": {"icpStatus": "yes"}}
    return 200, {"requestId": request_id,
                 "result": {"icpStatus": mode == "filed"}}


SHAPES = {"aliyun": aliyun, "tencent": tencent, "miit": miit,
          "thirdparty": thirdparty, "jdcloud": jdcloud}


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
