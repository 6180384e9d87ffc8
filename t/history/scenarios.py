"""What each kind of scenario does, with the choices its schedule drew.
Each runs in a thread of its own at its time; r is the Runner."""

import random
import time

from schedule import hosts_of


def revoke_during_lookup(r, s):
    """An operator's write lands while the lookup's API request is under
    way, slow: the answer, asked before the write, must not replace it."""
    d, p = s.domain, s.params
    r.api_set(d, "filed")
    r.api_next(d, p["delay_ms"])
    since = r.api_seq()
    r.op_del(d)                 # nothing in Redis: the next lookup asks
    r.kick(p["node"], d)
    asked = r.wait_arrival(d, since, 3.0, slow_ms=p["delay_ms"])
    if asked is None:
        r.h.note("revoke_during_lookup on %s: the API was not asked" % d)
        return
    time.sleep(p["delay_ms"] / 1000 * p["frac"])
    if p["how"] == "import":
        r.op_import(d, p["status"])
    else:
        r.op_write(d, p["status"], persist=True)


def purge_during_lookup(r, s):
    """The filing comes through while a slow lookup asks the API: the
    operator purges the node that asks (with redis=1, or its zone alone);
    the answer asked before the purge must not be kept."""
    d, p = s.domain, s.params
    r.api_set(d, p["old"])
    r.api_next(d, p["delay_ms"])
    since = r.api_seq()
    r.op_del(d)
    r.kick(p["node"], d)
    asked = r.wait_arrival(d, since, 3.0, slow_ms=p["delay_ms"])
    if asked is None:
        r.h.note("purge_during_lookup on %s: the API was not asked" % d)
        return
    r.api_set(d, "filed")
    time.sleep(p["delay_ms"] / 1000 * p["frac"])
    node = asked.get("node") or p["node"]
    r.purge(node, random.choice(hosts_of(d)), p["redis"])


def close_changes(r, s):
    """Two operator writes of one hash a few ms apart, while Redis's
    replies reach the nodes 15-200 ms late: the nodes' re-reads of the
    two changes are under way together."""
    p = s.params
    low, high = p["late"]
    start = time.time()
    r.late(low, high)
    try:
        for d, first, second, gap_ms, wait in p["pairs"]:
            time.sleep(wait)
            one = r.op_conn()
            two = r.op_conn()
            r.op_write(d, first, conn=one, persist=True)
            time.sleep(gap_ms / 1000)
            r.op_write(d, second, conn=two, persist=True)
            one.close()
            two.close()
        time.sleep(0.5)
    finally:
        r.late(0, 0)
        r.fault("slow", start, time.time(), how="replies %d-%d ms late"
                % (low, high))


def churn(r, s):
    """operator writes, deletions, imports, purges, API flips, at random"""
    d = s.domain
    for op in s.params["ops"]:
        time.sleep(op["wait"])
        what = op["what"]
        if what == "write":
            r.op_write(d, op["status"], persist=op["persist"])
        elif what == "del":
            r.op_del(d)
        elif what == "import":
            r.op_import(d, op["status"], ttl=op["ttl"])
        elif what == "purge":
            r.purge(op["node"], random.choice(hosts_of(d)), op["redis"])
        else:
            r.api_set(d, op["status"], delay_ms=op["delay_ms"])


def flip(r, s):
    """the API changes its mind; the operator purges (the runbook's "a
    domain just got its filing")"""
    d, p = s.domain, s.params
    r.api_set(d, p["mode"])
    if p["purge"]:
        time.sleep(p["wait"])
        r.purge(p["node"], random.choice(hosts_of(d)), True)


def api_trouble(r, s):
    """the API fails (500), or is slower than icp_gate_api_timeout (some
    longer than the fleet lock's life), for a few seconds"""
    d, p = s.domain, s.params
    if p["mode"] == "500":
        r.api_set(d, "500")
    else:
        r.api_set(d, "filed", delay_ms=p["delay_ms"])
    time.sleep(p["seconds"])
    r.api_set(d, p["after"])


def pause(r, s):
    r.pause(s.params["how"], s.params["seconds"])


def restart(r, s):
    r.restart(s.params["gap"])


def channel_kill(r, s):
    r.channel_kill()


def reload(r, s):
    r.reload(s.params["node"])


SCENARIOS = {f.__name__: f for f in (revoke_during_lookup, purge_during_lookup,
                                     close_changes, churn, flip, api_trouble,
                                     pause, restart, channel_kill, reload)}
