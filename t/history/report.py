"""A violation's history, told in order: the events of its domain around
it (operations, what the filing API was asked and answered, how Redis's
hash changed, the faults, what each node showed when it changed), with
times from the run's start."""


def summary(h, violations, elapsed):
    by = {"a": 0, "b": 0, "c": 0}
    for v in violations:
        by[v.prop] += 1
    ops = sum(1 for o in h.ops if o["kind"] not in ("api", "api_next"))
    return ("history seed %d (%s): %d nodes, %d domains, %.0f s, %d scenarios, "
            "%d operations, %d requests, %d API answers, %d Redis commands: "
            "%d violations (a: %d, b: %d, c: %d)" % (
                h.schedule.seed, h.schedule.profile, h.schedule.nodes,
                len(h.schedule.domains), elapsed, len(h.schedule.scenarios),
                ops, len(h.requests), len(h.answers), len(h.monitor),
                len(violations), by["a"], by["b"], by["c"]))


def describe_violations(checker, violations, limit=16):
    kinds = {}
    for v in violations:
        kinds["(%s) %s" % (v.prop, v.kind)] = kinds.get(
            "(%s) %s" % (v.prop, v.kind), 0) + 1
    lines = ["by kind: " + ", ".join("%s x%d" % kv
                                     for kv in sorted(kinds.items()))]
    for v in violations[:limit]:
        lines.append("(%s) %s%s: %s%s" % (
            v.prop, v.kind, " on " + v.domain if v.domain else "",
            v.text, " (and %d more like it)" % (v.count - 1)
            if v.count > 1 else ""))
    if len(violations) > limit:
        lines.append("... and %d more" % (len(violations) - limit))
    return lines


def verdict(v):
    return "absent" if v is None else repr(v)


def story(h, checker, v, before=10.0, after=1.5, limit=70):
    """the events of v's domain from `before` s before it to `after` s
    after, and those of the verdicts it names, whenever they were"""
    d = v.domain
    t1 = v.at - before
    t2 = v.at + after
    refs = set(v.refs)
    ev = []

    def add(t, text, keep=False):
        if t is not None and (keep or t1 <= t <= t2):
            ev.append((t, text))

    for o in h.ops:
        if o["kind"] != "restart" and o["domain"] != d:
            continue
        k = o["kind"]
        keep = o.get("tag") in refs
        if k == "write":
            add(o["start"], "operator: HSET %s status %s source %s (%s)%s: "
                "Redis time %+.3fs, answered %+.3fs" % (
                    o["domain"], o["status"], o["source"], o["tag"],
                    " PERSIST" if o["persist"] else "",
                    checker.rel(o.get("redis_time")), checker.rel(o["end"]))
                if o["ok"] else "operator write %s failed: %s" % (
                    o["tag"], o.get("error")), keep)
        elif k == "del":
            add(o["start"], "operator: DEL %s: Redis time %+.3fs" % (
                o["domain"], checker.rel(o.get("redis_time"))))
        elif k == "import":
            add(o["start"], "icp-gate-import %s,%s,%s%s: %s, ended %+.3fs" % (
                o["host"], o["status"], o["tag"],
                " --ttl %s" % o["ttl"] if o["ttl"] else "",
                "ok" if o["ok"] else "failed", checker.rel(o["end"])), keep)
        elif k == "purge":
            add(o["start"], "purge %s on %s%s: %s %s, answered %+.3fs" % (
                o["host"], o["node"], " redis=1" if o["redis"] else "",
                o["status"], _compact(o.get("answer")), checker.rel(o["end"])))
        elif k == "api":
            add(o["start"], "filing API now says %s for %s%s" % (
                o["mode"], o["domain"], " (%d ms late)" % o["delay_ms"]
                if o["delay_ms"] else ""))
        elif k == "api_next":
            add(o["start"], "filing API: its next answer for %s %d ms late" % (
                o["domain"], o["delay_ms"]))
        elif k == "restart":
            add(o["start"], "redis-server killed (restarted empty)")
    for a in h.answers:
        if a["domain"] != d:
            continue
        keep = a["icp"] in refs
        add(a["arrived"], "filing API asked by %s (request %d, %s%s)" % (
            a["node"], a["seq"], a["mode"],
            ", sleeps %d ms" % a["delay_ms"] if a["delay_ms"] else ""), keep)
        add(a["answered"], "filing API answered %s to %s: %s %s" % (
            a["node"], a["seq"], a["status"] or "nothing",
            (a["verdict"] or "") + (" " + a["icp"] if a["icp"] else "")), keep)
    for ts, dom, b, a, cause, ok in checker.changes:
        if dom == d or dom is None and cause == "restart":
            add(ts, "Redis %s: %s -> %s (%s)%s" % (
                dom or "", verdict(b), verdict(a), cause,
                "" if ok else "  <- the table refuses this write"))
    for f in checker.faults:
        if f["kind"] == "api" and f.get("domain") != d:
            continue
        if f["start"] <= t2 and f["end"] >= t1:
            add(max(f["start"], t1), "fault %s%s: %s, %+.3fs to %+.3fs" % (
                f["kind"], " on " + f["node"] if f["node"] else "",
                f.get("how", ""), checker.rel(f["start"]),
                checker.rel(f["end"])))
    shown = {}
    for r in sorted(h.requests, key=lambda r: r["start"]):
        if r["domain"] != d:
            continue
        what = (r["status"], r["reason"], r["tag"])
        if shown.get(r["node"]) != what:
            shown[r["node"]] = what
            add(r["start"], "%s answers %s %s%s (request %+.3fs..%+.3fs)" % (
                r["node"], r["status"], r["reason"] or r["result"],
                " " + r["tag"] if r["tag"] else "", checker.rel(r["start"]),
                checker.rel(r["end"])))
    add(v.at, ">>> (%s) %s: %s" % (v.prop, v.kind, v.text), True)
    ev.sort(key=lambda e: e[0])
    if len(ev) > limit:
        mark = next(i for i, e in enumerate(ev) if e[1].startswith(">>>"))
        lo = max(0, min(mark - limit + 5, len(ev) - limit))
        ev = ev[lo:lo + limit]
    return ["  %+8.3fs  %s" % (checker.rel(t), text) for t, text in ev]


def _compact(doc):
    if not isinstance(doc, dict):
        return str(doc)
    return ",".join("%s=%s" % (k, doc[k]) for k in ("zone", "redis")
                    if k in doc)
