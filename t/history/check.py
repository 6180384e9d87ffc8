"""The properties, checked on a recorded history.

Terms (the P9 contract's):

- A verdict is named by its tag, the hash's "icp" field: op-N (an
  operator's write), imp-N (an import), api-N (the N-th answer of the
  filing API stand-in, which tags every answer).  Every request's answer
  (X-Icp: $icp_gate_icp) and every console view of a zone names the
  verdict it came from.
- A verdict's version: an operator's or an import's write, the Redis time
  it took effect (MONITOR); an API answer, its question's time, the Redis
  time of the fleet look before the API request: at most the time the
  stand-in received the request, at least that less question_age (below),
  or 0 when a Redis fault was under way (the lookup could not look); the
  hash's "rev" field, when the module writes one, is the version itself.
- V is older than X when V's version is surely below X's: the upper end
  of V's range below the lower end of X's.  Nothing is called older on a
  guess.
- The legal history of a hash: Redis's own history (MONITOR), except the
  writes the precedence table refuses: an API answer over an operator's or
  an import's hash, over a newer API answer, or asked before a purge with
  redis=1 (the tombstone, max(icp_gate_ttl, icp_gate_negative_ttl)), or
  asked by a node's lookup that began before a purge on that node.

Properties:

(a) Redis: every write the table refuses and Redis took is a violation.
    Nodes: once an operator's write, an import or a purge is answered, a
    node shows no verdict older than it (a request's answer, or a console
    view of a fresh copy) from the moment the node has shown the write, or
    from the settling time on, until the legal hash changes again (or the
    tombstone of the purge ends).
(b) Every request answered after the settling time reflects the newest
    legal verdict: a 200 needs "filed", a 403 its reason, among the legal
    hash's states in [start - bound, end]; while the legal hash is absent
    the filing API decides: the verdicts it answered or would answer then
    (and the copy from before, while the API takes its time).  lookup_failed
    is allowed only in a fault's window.
(c) No crash line in any node's error log, no sanitizer report, every
    request answered 200 or 403, and every node answers at the end.

The bound (README): with the invalidation channel, a change written to
Redis reaches every node at once (t/26: 60 of 60 within 1 s): BOUND_CHANNEL
= 1 s (1.5 s under ASan), plus 0.5 s while Redis's replies come late (up to
200 ms each, a change and its re-read).  Without the channel (killed, or a
node reloaded, within the bound): icp_gate_local_ttl +
icp_gate_stale_while_revalidate, plus 1.5 s for a loaded 2-core machine.
A Redis fault (paused, restarted, commands timed out, connections failed)
heals within its own timeouts: the reconnect backoff (100 ms doubling, so
at most the fault's length, and 5 s) and 2 s for the channel's set-up; the
quiet bound follows.  An API fault (an answer that failed or took more
than the API timeout - 0.3 s) of a domain excuses that domain's refusals
and old copies for icp_gate_error_ttl and the quiet bound after it.
"""

import re
import time

from model import (DOMAIN_PREFIX, PURGED_PREFIX, Store, Timeline, Value,
                   Verdict, group_lines, keys_of, same_verdict)

# error.log lines that tell of a fault: its kind, and how long before and
# after the line's second it may have lasted
FAULT_LINES = [
    (re.compile(r"commands timed out in the last"), "redis", 5, 1),
    (re.compile(r"connect failed|connection lost|closed as too late|"
                r"refused setup"), "redis", 0, 1),
    # found within 1 s + max(2 x timeout, 2 s) of its loss
    (re.compile(r"invalidation channel lost"), "channel", 3, 1),
]
# a killed channel (or a reloaded node's) is back within its first
# reconnect (100 ms) and its subscription: 2 s is room for a loaded machine
CHANNEL_BACK = 2.0
LOG_TIME = re.compile(r"^(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) ")


class Violation:
    def __init__(self, prop, kind, domain, node, at, text, refs=()):
        self.prop = prop
        self.kind = kind
        self.domain = domain
        self.node = node
        self.at = at
        self.text = text
        self.refs = list(refs)
        self.count = 1

    def key(self):
        """one violation however many observations show it: the same
        property broken on the same domain and node by the same verdicts"""
        return (self.prop, self.kind, self.domain, self.node,
                tuple(self.refs))


class Checker:
    def __init__(self, h, asan=False):
        self.h = h
        s = h.settings
        self.api_timeout = s["api_timeout_ms"] / 1000
        self.error_ttl = s["error_ttl"]
        self.bound_channel = 1.5 if asan else 1.0
        self.bound_quiet = s["local_ttl"] + s["swr"] + 1.5
        self.slow_slack = 0.5
        self.tombstone = max(s["ttl"], s["negative_ttl"])
        # the oldest a question can be when its API request arrives: a
        # node that waited out another's fleet lock (2 x the API timeout
        # + 2 x the Redis timeout) and a second more asks without looking
        # again, and a request may wait an API timeout in the queue
        self.question_age = (3 * self.api_timeout + 1.0
                             + 2 * s["redis_timeout_ms"] / 1000)
        self.violations = {}
        self.changes = []       # (ts, domain, before, after, cause, legal)
        self.actual = {}        # domain -> Timeline
        self.legal = {}
        self.tag_time = {}      # op/imp tag -> Redis time of its write
        self.drift = []

    # ------------------------------------------------------------ helpers

    def violate(self, prop, kind, domain, node, at, text, refs=()):
        v = Violation(prop, kind, domain, node, at, text, refs)
        old = self.violations.get(v.key())
        if old:
            old.count += 1
        else:
            self.violations[v.key()] = v

    def rel(self, t):
        return t - self.h.t0 if t is not None else float("nan")

    def timeline(self, which, domain):
        return which.setdefault(domain, Timeline())

    def version(self, tag, rev=None):
        """(lowest, highest) possible version of the verdict a tag names"""
        if rev is not None:
            return rev / 1e6, rev / 1e6
        if tag is None:
            return 0.0, float("inf")
        if tag in self.tag_time:
            t = self.tag_time[tag]
            return t, t
        a = self.answers.get(tag)
        if a is None:
            return 0.0, float("inf")
        high = a["arrived"]
        low = high - self.question_age
        if self.redis_fault_in(None, low - 1, high):
            low = 0.0
        return low, high

    def older(self, tag, rev, than_low):
        return self.version(tag, rev)[1] < than_low

    # ------------------------------------------------------------ faults

    def collect_faults(self):
        h = self.h
        faults = [dict(f) for f in h.faults]
        for a in h.answers:
            took = ((a["answered"] or h.end or a["arrived"]) - a["arrived"])
            if a["status"] not in (200, 404) or took >= self.api_timeout - 0.3:
                faults.append(dict(kind="api", domain=a["domain"],
                                   start=a["arrived"],
                                   end=a["arrived"] + min(took,
                                                          self.api_timeout),
                                   node=None, how="API %s after %.1fs" % (
                                       a["status"] or "no answer", took)))
        for node, text in h.logs.items():
            for line in text.splitlines():
                for pattern, kind, before, after in FAULT_LINES:
                    if not pattern.search(line):
                        continue
                    m = LOG_TIME.match(line)
                    if not m:
                        continue
                    t = time.mktime(tuple(int(x) for x in m.groups())
                                    + (0, 0, -1))
                    faults.append(dict(kind=kind, node=node, start=t - before,
                                       end=t + after,
                                       how="log: " + line[20:110]))
        self.faults = faults

    def heal(self, f):
        return min(5.0, f["end"] - f["start"]) + 2.0

    def redis_fault_in(self, node, t1, t2):
        return any(f["kind"] == "redis" and f["node"] in (None, node)
                   and f["start"] <= t2 and f["end"] >= t1
                   for f in self.faults)

    def settle(self, node, domain, at, api, base, channel=True):
        """when a change made at `at` must show on node (channel: whether
        the change reaches it through the invalidation channel)"""
        due = at + base
        if any(f["kind"] == "slow" and f["start"] <= due
               and f["end"] >= at - 1 for f in self.faults):
            due += self.slow_slack
        changed = True
        while changed:
            changed = False
            for f in self.faults:
                kind = f["kind"]
                if kind == "api":
                    if not api or f["domain"] != domain:
                        continue
                    until = f["end"] + self.error_ttl + self.bound_quiet
                elif f["node"] not in (None, node):
                    continue
                elif kind == "channel":
                    if not channel or f["end"] + CHANNEL_BACK < at:
                        continue
                    until = max(at, f["start"]) + self.bound_quiet
                elif kind == "redis":
                    until = f["end"] + self.heal(f) + self.bound_quiet
                else:
                    continue
                if f["start"] <= due and until >= at and until > due:
                    due = until
                    changed = True
        return due

    def excused(self, node, domain, s, t):
        """a request [s, t] in a fault's window: not held to (b)"""
        for f in self.faults:
            if f["kind"] == "api":
                if (f["domain"] == domain and f["start"] <= t
                        and f["end"] + self.error_ttl + self.bound_quiet >= s):
                    return f
            elif (f["kind"] == "redis" and f["node"] in (None, node)
                  and f["start"] <= t
                  and f["end"] + self.heal(f) + self.bound_quiet >= s):
                return f
        return None

    def bound(self, node, s, t):
        b = self.bound_channel
        for f in self.faults:
            if f["node"] not in (None, node):
                continue
            if (f["kind"] == "channel" and f["start"] <= t
                    and f["end"] + CHANNEL_BACK + self.bound_quiet >= s):
                return self.bound_quiet
            if (f["kind"] == "slow" and f["start"] <= t
                    and f["end"] + self.bound_quiet >= s):
                b = self.bound_channel + self.slow_slack
        return b

    # ------------------------------------------------------------ Redis

    def purge_ops(self, domain=None):
        return [o for o in self.h.ops if o["kind"] == "purge" and o["ok"]
                and (domain is None or o["domain"] == domain)]

    def redis_history(self):
        """MONITOR -> the actual and the legal history of every hash, and
        the (a) violations of the writes Redis took"""
        h = self.h
        actual, legal = Store(), Store()
        groups = group_lines(h.monitor)
        events = [(g.ts, 1, g) for g in groups]
        events += [(o["start"], 0, "restart") for o in h.ops
                   if o["kind"] == "restart"]
        events += [(s["ts"], 2, s) for s in h.snapshots]
        events.sort(key=lambda e: (e[0], e[1]))
        purges = self.purge_ops()
        for p in purges:
            p["tdel"] = None
        restarts = []

        for ts, _, event in events:
            self.expire_until(actual, legal, ts)
            if event == "restart":
                restarts.append(ts)
                for store, which in ((actual, self.actual),
                                     (legal, self.legal)):
                    for key in list(store.keys):
                        if key.startswith(DOMAIN_PREFIX):
                            self.timeline(which, key[len(DOMAIN_PREFIX):]).add(
                                ts, None)
                    store.clear()
                for d in set(self.actual) | set(self.legal):
                    self.timeline(self.actual, d).add(ts, None)
                    self.timeline(self.legal, d).add(ts, None)
                self.changes.append((ts, None, None, None, "restart", True))
                continue
            if isinstance(event, dict):
                self.resync(actual, legal, event)
                continue
            self.apply_group(event, actual, legal, purges, restarts)
        self.expire_until(actual, legal, h.end or time.time())

    def expire_until(self, actual, legal, ts):
        for store, which, name in ((actual, self.actual, "actual"),
                                   (legal, self.legal, "legal")):
            for at, key in sorted(store.due()):
                if at > ts:
                    break
                store.get(key, at)
                if key.startswith(DOMAIN_PREFIX):
                    d = key[len(DOMAIN_PREFIX):]
                    self.timeline(which, d).add(at, None)
                    if name == "actual":
                        self.changes.append((at, d, None, None, "expired",
                                             True))

    def resync(self, actual, legal, snap):
        """a snapshot of Redis: the model must agree with it (what MONITOR
        missed: the moments after a restart before it was back)"""
        ts = snap["ts"]
        seen = set()
        for key, (fields, pttl) in snap["keys"].items():
            seen.add(key)
            v = actual.get(key, ts)
            if v is None or v.fields != fields:
                self.drift.append((ts, key, v and v.fields, fields))
                self.set_both(actual, legal, key, fields,
                              ts + pttl / 1000 if pttl > 0 else None, ts)
        for key in [k for k in actual.keys if k.startswith(DOMAIN_PREFIX)]:
            if key not in seen and actual.get(key, ts) is not None:
                self.drift.append((ts, key, actual.keys[key].fields, None))
                self.set_both(actual, legal, key, None, None, ts)

    def set_both(self, actual, legal, key, fields, expire_at, ts):
        value = Value(fields, expire_at) if fields is not None else None
        actual.set(key, value)
        legal.set(key, value)
        d = key[len(DOMAIN_PREFIX):]
        self.timeline(self.actual, d).add(ts, Verdict.of(value))
        self.timeline(self.legal, d).add(ts, Verdict.of(value))

    def apply_group(self, g, actual, legal, purges, restarts):
        h = self.h
        ts = g.ts
        touched = []
        for cmd in g.cmds:
            for k in keys_of(cmd):
                if k == "*":
                    touched.extend(actual.keys)
                elif k not in touched and (k.startswith(DOMAIN_PREFIX)
                                           or k.startswith(PURGED_PREFIX)):
                    touched.append(k)
        if not touched:
            return
        before = {k: Verdict.of(actual.get(k, ts)) for k in touched}
        for cmd in g.cmds:
            actual.apply(cmd, ts)
        own = g.client in h.own_ops
        for k in touched:
            if k.startswith(PURGED_PREFIX):
                for cmd in g.cmds:
                    legal.apply(cmd, ts, only=k)
                d = k[len(PURGED_PREFIX):]
                self.mark_purge(purges, d, ts, g.client)
                continue
            d = k[len(DOMAIN_PREFIX):]
            b, a = before[k], Verdict.of(actual.get(k, ts))
            deleted = any(c[0].upper() in ("DEL", "UNLINK") for c in g.cmds)
            if (deleted and a is None and not own
                    and g.client not in h.own_admin):
                self.mark_purge(purges, d, ts, g.client)
            ok = True
            if (a is not None and a.source == "api" and not own
                    and not same_verdict(a, b)):
                ok = self.api_write(d, a, ts, legal, purges, restarts)
                if ok:
                    legal.set(k, actual.get(k, ts))
            else:
                for cmd in g.cmds:
                    legal.apply(cmd, ts, only=k)
            if a is not None and a.tag and a.tag not in self.tag_time \
                    and a.source != "api":
                self.tag_time[a.tag] = ts
            if not same_verdict(a, b):
                cause = ("operator" if own else
                         "import" if a is not None and a.source == "import"
                         else "api write" if a is not None
                         else "purge" if self.in_purge(d, ts) else "deleted")
                self.changes.append((ts, d, b, a, cause, ok))
            self.timeline(self.actual, d).add(ts, a)
            self.timeline(self.legal, d).add(ts, Verdict.of(legal.get(k, ts)))

    def in_purge(self, d, ts):
        return any(p["domain"] == d and p["start"] - 0.05 <= ts
                   <= p["end"] + 0.05 for p in self.h.ops
                   if p["kind"] == "purge")

    def mark_purge(self, purges, d, ts, client):
        for p in purges:
            if (p["domain"] == d and p["redis"] and p["tdel"] is None
                    and p["start"] - 0.01 <= ts <= p["end"] + 0.01):
                p["tdel"] = ts

    def api_write(self, d, a, ts, legal, purges, restarts):
        """the module wrote API answer a at ts: does the table allow it?"""
        ans = self.answers.get(a.tag)
        _, high = self.version(a.tag, a.rev)
        now = Verdict.of(legal.get(DOMAIN_PREFIX + d, ts))
        asked = ("asked %+.3fs by %s" % (self.rel(ans["arrived"]), ans["node"])
                 if ans else "of unknown origin")
        if now is not None and now.operator():
            self.violate("a", "api-over-operator", d, None, ts,
                         "API answer %s (%s, %s) replaced %s's %s (written "
                         "%+.3fs) in Redis" % (
                             a.tag, a.status, asked,
                             "an import" if now.source == "import"
                             else "an operator", now.tag or now.status,
                             self.rel(self.tag_time.get(now.tag))),
                         refs=[a.tag, now.tag])
            return False
        if now is not None and now.source == "api" and now.status:
            low_now, _ = self.version(now.tag, now.rev)
            if high < low_now:
                self.violate("a", "older-api-over-newer", d, None, ts,
                             "API answer %s (%s, %s) replaced the newer API "
                             "answer %s in Redis" % (a.tag, a.status, asked,
                                                     now.tag),
                             refs=[a.tag, now.tag])
                return False
        for p in purges:
            if p["domain"] != d:
                continue
            if any(p["start"] < r < ts for r in restarts):
                continue
            if p["redis"]:
                tdel = p["tdel"] if p["tdel"] is not None else p["start"]
                after = p["tdel"] if p["tdel"] is not None else p["end"]
                if after < ts < after + self.tombstone and high < tdel:
                    self.violate(
                        "a", "purge-undone", d, p["node"], ts,
                        "API answer %s (%s, %s) was written to Redis %.3fs "
                        "after the purge with redis=1 on %s (%+.3fs) that it "
                        "predates" % (a.tag, a.status, asked, ts - after,
                                      p["node"], self.rel(p["start"])),
                        refs=[a.tag])
                    return False
            if (ans and ans["node"] == p["node"] and p["end"] < ts
                    and ans["arrived"] < p["start"]):
                self.violate(
                    "a", "purge-undone", d, p["node"], ts,
                    "API answer %s (%s, %s) was written to Redis after %s's "
                    "purge%s (%+.3fs): a lookup that began before a purge "
                    "writes nothing" % (a.tag, a.status, asked, p["node"],
                                        " with redis=1" if p["redis"] else
                                        " of its zone", self.rel(p["start"])),
                    refs=[a.tag])
                return False
        return True

    # ------------------------------------------------------------ nodes

    def observations(self):
        """what nodes showed: (node, domain, start, end, tag, status, what)"""
        obs = []
        for r in self.h.requests:
            status = ("filed" if r["status"] == 200 else r["reason"]
                      if r["status"] == 403 else None)
            obs.append((r["node"], r["domain"], r["start"], r["end"],
                        r["tag"], status, "request", r))
        for c in self.h.consoles:
            z = c["zone"]
            if not isinstance(z, dict) or z.get("fresh_for", 0) <= 0:
                continue
            obs.append((c["node"], c["domain"], c["start"], c["end"],
                        z.get("icp"), z.get("status"), "console", c))
        obs.sort(key=lambda o: o[2])
        return obs

    def barriers(self):
        """domain -> [barrier]: every operator write and import Redis took,
        every purge answered"""
        out = {}
        ends = {}
        for ts, d, b, a, cause, ok in self.changes:
            if cause in ("operator", "import") and a is not None and a.status:
                legal = self.timeline(self.legal, d)
                end = legal.first_after(
                    ts + 1e-6,
                    lambda st, tag=a.tag: st is None or st.tag != tag)
                op = self.op_by_tag.get(a.tag)
                out.setdefault(d, []).append(dict(
                    kind="write", tag=a.tag, at=ts, answered=max(
                        ts, op["end"] if op and op["end"] else ts),
                    end=end, node=None))
        restarts = [o["start"] for o in self.h.ops if o["kind"] == "restart"]
        for p in self.purge_ops():
            d = p["domain"]
            writes = [b["at"] for b in out.get(d, []) if b["at"] > p["end"]]
            later = [r for r in restarts if r > p["start"]] + writes
            end = min(later + [p["end"] + self.tombstone])
            out.setdefault(d, []).append(dict(
                kind="purge", redis=p["redis"], node=p["node"],
                at=p["start"], answered=p["end"], end=end, op=p))
        return out

    def check_nodes(self, obs):
        seen = {}           # (node, tag) -> first time a node showed it
        for node, d, s, t, tag, status, what, rec in obs:
            if tag:
                seen.setdefault((node, tag), t)
        barriers = self.barriers()
        for node, d, s, t, tag, status, what, rec in obs:
            if not tag:
                continue
            for x in barriers.get(d, ()):
                if not (x["at"] < s and t < x["end"]):
                    continue
                if x["kind"] == "write":
                    if tag == x["tag"] or not self.older(tag, None, x["at"]):
                        continue
                    shown = seen.get((node, x["tag"]), float("inf"))
                    due = self.settle(node, d, x["answered"], False,
                                      self.bound_channel)
                    if s <= min(due, shown):
                        continue
                    self.violate(
                        "a", "node-older-than-write", d, node, s,
                        "%s showed %s (%s) at %+.3fs, older than %s (written "
                        "%+.3fs, %s)" % (
                            node, tag, status, self.rel(s), x["tag"],
                            self.rel(x["at"]),
                            "which it had shown at %+.3fs" % self.rel(shown)
                            if shown < s else "due everywhere by %+.3fs"
                            % self.rel(due)),
                        refs=[tag, x["tag"]])
                    continue
                p = x["op"]
                if not x["redis"] and node != x["node"]:
                    continue
                own = node == x["node"]
                due = self.settle(node, d, x["answered"], True,
                                  0.0 if own else self.bound_channel,
                                  channel=not own)
                if s <= due or not self.older(tag, None, p["start"]):
                    continue
                if not x["redis"] and any(
                        st is not None and st.tag == tag
                        for _, _, st in self.timeline(self.actual, d).during(
                            p["start"], t)):
                    continue    # Redis had it after the purge: read again
                self.violate(
                    "a", "node-older-than-purge", d, node, s,
                    "%s showed %s (%s) at %+.3fs, asked before %s's purge%s "
                    "(%+.3fs, answered %+.3fs)" % (
                        node, tag, status, self.rel(s), x["node"],
                        " with redis=1" if x["redis"] else " of its zone",
                        self.rel(p["start"]), self.rel(p["end"])),
                    refs=[tag])

    # ------------------------------------------------------------ requests

    def api_modes(self, d, t1, t2):
        """what the API said of d (a verdict mode) at some time in [t1, t2]"""
        modes = set()
        current = None
        for o in self.h.ops:
            if o["kind"] != "api" or o["domain"] != d:
                continue
            if o["start"] <= t1:
                current = o["mode"]
            elif o["start"] <= t2:
                modes.add(o["mode"])
        if current:
            modes.add(current)
        return {"unfiled" if m == "404" else m for m in modes}

    def check_requests(self):
        for r in self.h.requests:
            node, d, s, t = r["node"], r["domain"], r["start"], r["end"]
            if r["status"] not in (200, 403):
                self.violate("c", "no-answer", d, node, s,
                             "a request to %s for %s got %s" % (
                                 node, r["host"], r["status"] or "no answer"),
                             refs=[r["status"]])
                continue
            if self.excused(node, d, s, t):
                r["excused"] = True
                continue
            b = self.bound(node, s, t)
            held = self.legal_statuses(d, node, s - b, t)
            got = "filed" if r["status"] == 200 else r["reason"]
            if got in held:
                continue
            self.violate(
                "b", "let-in" if got == "filed" else "lookup-failed"
                if got == "lookup_failed" else "refused", d, node, s,
                "%s answered %s for %s at %+.3fs (%s) while the newest "
                "verdicts were %s" % (
                    node, r["status"], r["host"], self.rel(s),
                    got + (" " + r["tag"] if r["tag"] else ""),
                    "/".join(sorted(held)) or "none"),
                refs=[got, r["tag"]] + sorted(held))

    def legal_statuses(self, d, node, t1, t2):
        legal = self.timeline(self.legal, d)
        held = set()
        spans = legal.during(t1, t2)
        for since, until, st in spans:
            if st is not None and st.status:
                held.add(st.status)
                continue
            # absent: the filing API decides; the copy from before answers
            # while the API takes its time
            before = legal.at(since - 1e-6)
            if (before is not None and before.status
                    and since >= t1 - self.api_timeout - 1.0):
                held.add(before.status)
            barrier = max([p["start"] for p in self.purge_ops(d)
                           if p["start"] <= t2 and (p["redis"]
                                                    or p["node"] == node)]
                          + [0.0])
            start = max(since, barrier)
            held |= self.api_modes(d, start - 0.5, min(until, t2))
            for a in self.answers_of.get(d, ()):
                if (a["verdict"] and start - 0.5 <= a["arrived"] <= t2):
                    held.add(a["verdict"])
        return held

    # ------------------------------------------------------------ crashes

    def check_crashes(self):
        for node, lines in self.h.crashes.items():
            for line in lines[:3]:
                self.violate("c", "crash", None, node, self.h.end,
                             "%s: %s" % (node, line[:300]), refs=[line[:200]])
        for node, (status, console) in self.h.final.items():
            if status not in (200, 403) or console != 200:
                self.violate("c", "gone", None, node, self.h.end,
                             "%s does not answer at the end (request %s, "
                             "console %s)" % (node, status, console))

    # ------------------------------------------------------------ all

    def run(self):
        h = self.h
        self.answers = {a["icp"]: a for a in h.answers if a["icp"]}
        self.answers_of = {}
        for a in h.answers:
            self.answers_of.setdefault(a["domain"], []).append(a)
        self.op_by_tag = {o["tag"]: o for o in h.ops if o.get("tag")}
        self.collect_faults()
        self.redis_history()
        self.check_nodes(self.observations())
        self.check_requests()
        self.check_crashes()
        return sorted(self.violations.values(), key=lambda v: v.at or 0)

