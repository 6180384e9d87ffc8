"""Seeded schedules: which domains, what each holds at the start, and the
scenarios that run over them, each at its time, with every random choice
drawn here from the seed (what the machine's timing then makes of them is
the history's).  Three scenarios open the windows the issue's findings
need on purpose: an operator's write while the lookup's API request is
slow, a purge while it is, and two changes close together while Redis's
replies come late."""

import random

DOMAIN_NAMES = ["d1.cn", "d2.com.cn", "d3.com", "d4.cn", "d5.net.cn", "d6.cn",
                "d7.org", "d8.cn"]
VERDICTS = ("filed", "unfiled", "pending", "revoked")

# seconds a scenario has its domain to itself
LENGTHS = {"revoke_during_lookup": 5.5, "purge_during_lookup": 5.5,
           "close_changes": 4.0, "churn": 5.0, "flip": 2.5,
           "api_trouble": 5.0, "pause": 2.0, "restart": 2.5,
           "channel_kill": 0.5, "reload": 2.0}
GLOBAL = ("pause", "restart", "channel_kill", "reload")
TARGETED = ("revoke_during_lookup", "purge_during_lookup", "close_changes")
WARM_UP = 2.0

PROFILES = {
    # make test: a couple of these, about 30 s each
    "short": dict(domains=5, nodes=3, duration=26.0, targeted=1,
                  random=3, redis_faults=(0, 1), last_start=19.0),
    # make history: long runs
    "long": dict(domains=7, nodes=3, duration=90.0, targeted=2,
                 random=12, redis_faults=(1, 3), last_start=82.0),
}


def hosts_of(domain):
    """the hosts a domain is asked by: itself and subdomains"""
    return [domain, "www." + domain, "live." + domain, "a.b." + domain]


class Scenario:
    def __init__(self, kind, at, domain=None, **params):
        self.kind = kind
        self.at = at
        self.domain = domain
        self.params = params

    def describe(self):
        params = ", ".join("%s=%s" % kv for kv in sorted(self.params.items()))
        return "%6.2fs %s%s%s" % (self.at, self.kind,
                                  " on " + self.domain if self.domain else "",
                                  " (" + params + ")" if params else "")


class Schedule:
    def __init__(self, seed, profile, domains, nodes, duration, initial,
                 scenarios):
        self.seed = seed
        self.profile = profile
        self.domains = domains
        self.nodes = nodes
        self.duration = duration
        # domain -> dict(holds, status, api, jitter_ms)
        self.initial = initial
        self.scenarios = scenarios

    def reduced(self, domains=None, drop_global=False, part=None,
                until=None):
        """a smaller schedule with the same seed: the domains kept (their
        scenarios, and the global ones unless dropped), the scenarios that
        start by `until` (s), or one half of them (part 0 or 1), moved to
        start after the warm-up"""
        keep = list(domains or self.domains)
        scenarios = []
        for s in self.scenarios:
            if until is not None and s.at > until:
                continue
            if s.kind == "close_changes":
                pairs = [p for p in s.params["pairs"] if p[0] in keep]
                if pairs:
                    params = dict(s.params, pairs=pairs, domains=tuple(
                        d for d in s.params["domains"] if d in keep))
                    scenarios.append(Scenario(s.kind, s.at, None, **params))
            elif s.domain is None and not drop_global or s.domain in keep:
                scenarios.append(s)
        duration = self.duration
        if part is not None and len(scenarios) > 1:
            half = len(scenarios) // 2
            scenarios = scenarios[:half] if part == 0 else scenarios[half:]
            shift = scenarios[0].at - WARM_UP
            scenarios = [Scenario(s.kind, s.at - shift, s.domain, **s.params)
                         for s in scenarios]
            duration = max(s.at + LENGTHS[s.kind] for s in scenarios) + 8.0
        elif scenarios:
            duration = min(duration,
                           max([s.at + LENGTHS[s.kind] + 8.0 for s in scenarios]
                               + [until + 3.0 if until is not None else 0]))
        used = {s.domain for s in scenarios if s.domain}
        for s in scenarios:
            used.update(s.params.get("domains", ()))
        keep = [d for d in keep if d in used] or keep[:1]
        return Schedule(self.seed, self.profile, keep, self.nodes, duration,
                        {d: self.initial[d] for d in keep}, scenarios)

    def size(self):
        return (len(self.scenarios), len(self.domains))

    def describe(self):
        lines = ["schedule: seed %d, %s, %d nodes, %d domains, %.0f s"
                 % (self.seed, self.profile, self.nodes, len(self.domains),
                    self.duration)]
        for d in self.domains:
            i = self.initial[d]
            lines.append("  %-10s starts %s, API says %s%s" % (
                d, i["holds"] if i["holds"] == "absent"
                else "%s %s" % (i["holds"], i["status"]), i["api"],
                " (+0..%d ms)" % i["jitter_ms"] if i["jitter_ms"] else ""))
        lines += ["  " + s.describe() for s in self.scenarios]
        return "\n".join(lines)


def generate(seed, profile_name, kinds=None):
    """kinds: draw only scenarios of these kinds (all by default)"""
    p = PROFILES[profile_name]
    rng = random.Random(seed)
    domains = DOMAIN_NAMES[:p["domains"]]
    initial = {}
    for d in domains:
        holds = rng.choice(("absent", "absent", "operator", "import"))
        initial[d] = dict(holds=holds, status=rng.choice(VERDICTS),
                          api=rng.choice(VERDICTS + ("filed",)),
                          jitter_ms=rng.choice((0, 0, 100, 300)))

    busy = {d: [] for d in domains}      # domain -> [(from, to)]
    scenarios = []

    def free(d, at, length):
        return all(at + length <= a or at >= b for a, b in busy[d])

    def place(kind, first, last, n_domains=1):
        for _ in range(50):
            at = round(rng.uniform(first, last), 2)
            length = LENGTHS[kind]
            choices = [d for d in domains if free(d, at, length)]
            if len(choices) < n_domains:
                continue
            picked = rng.sample(choices, n_domains)
            for d in picked:
                busy[d].append((at, at + length))
            return at, picked
        return None, None

    last = p["last_start"]
    allowed = set(kinds or LENGTHS)
    drawn = [k for k in TARGETED for _ in range(p["targeted"])]
    drawn += [rng.choice(("churn", "churn", "flip", "api_trouble",
                          "channel_kill", "reload"))
              for _ in range(p["random"])]
    for kind in drawn:
        if kind not in allowed:
            continue
        if kind in GLOBAL:
            at = round(rng.uniform(WARM_UP, last), 2)
            scenarios.append(make(rng, kind, at, None, domains, p["nodes"]))
            continue
        at, picked = place(kind, WARM_UP, last,
                           2 if kind == "close_changes" else 1)
        if at is None:
            continue
        scenarios.append(make(rng, kind, at, picked, domains, p["nodes"]))

    # Redis faults excuse what follows them for their healing and the
    # bound: in a short run they come late, not to hide the rest
    low, high = p["redis_faults"]
    for _ in range(rng.randint(low, high)):
        kind = rng.choice(("pause", "pause", "restart"))
        if kind not in allowed:
            continue
        first = WARM_UP if profile_name == "long" else last - 3
        at = round(rng.uniform(first, last), 2)
        scenarios.append(make(rng, kind, at, None, domains, p["nodes"]))

    scenarios.sort(key=lambda s: s.at)
    return Schedule(seed, profile_name, domains, p["nodes"], p["duration"],
                    initial, scenarios)


def make(rng, kind, at, picked, domains, nodes):
    node = "n%d" % rng.randint(1, nodes)
    d = picked[0] if picked else None
    if kind == "revoke_during_lookup":
        return Scenario(kind, at, d, delay_ms=rng.randint(900, 1500),
                        frac=round(rng.uniform(0.15, 0.75), 2),
                        status=rng.choice(("revoked", "revoked", "pending",
                                           "unfiled")),
                        how=rng.choice(("manual", "manual", "import")),
                        node=node)
    if kind == "purge_during_lookup":
        return Scenario(kind, at, d, delay_ms=rng.randint(1000, 1500),
                        frac=round(rng.uniform(0.2, 0.7), 2),
                        old=rng.choice(("unfiled", "unfiled", "revoked",
                                        "pending")),
                        redis=rng.random() < 0.7, node=node)
    if kind == "close_changes":
        pairs = []
        for _ in range(rng.randint(2, 4)):
            first = rng.choice(("filed", "filed", "revoked"))
            second = ("filed" if first != "filed"
                      else rng.choice(("revoked", "pending", "unfiled")))
            pairs.append((rng.choice(picked), first, second,
                          rng.randint(5, 50), round(rng.uniform(0.3, 0.8), 2)))
        return Scenario(kind, at, None, domains=tuple(picked), pairs=pairs,
                        late=(15, 200))
    if kind == "churn":
        ops = []
        for _ in range(rng.randint(3, 5)):
            what = rng.choice(("write", "write", "del", "import", "purge",
                               "purge", "api"))
            ops.append(dict(what=what, wait=round(rng.uniform(0.3, 1.2), 2),
                            status=rng.choice(VERDICTS),
                            persist=rng.random() < 0.5,
                            ttl=rng.choice((None, None, 4)),
                            node="n%d" % rng.randint(1, nodes),
                            redis=rng.random() < 0.5,
                            delay_ms=rng.choice((0, 0, 400, 1500))))
        return Scenario(kind, at, d, ops=ops)
    if kind == "flip":
        return Scenario(kind, at, d, mode=rng.choice(VERDICTS),
                        purge=rng.random() < 0.6, node=node,
                        wait=round(rng.uniform(0.2, 1.0), 2))
    if kind == "api_trouble":
        return Scenario(kind, at, d,
                        mode=rng.choice(("500", "slow", "slow")),
                        delay_ms=rng.randint(2500, 5000),
                        seconds=round(rng.uniform(1.5, 3.5), 1),
                        after=rng.choice(VERDICTS))
    if kind == "pause":
        return Scenario(kind, at, None, how=rng.choice(("client", "sigstop")),
                        seconds=round(rng.uniform(0.4, 1.5), 2))
    if kind == "restart":
        return Scenario(kind, at, None, gap=round(rng.uniform(0.3, 1.5), 2))
    if kind == "channel_kill":
        return Scenario(kind, at, None)
    if kind == "reload":
        return Scenario(kind, at, None, node=node)
    raise ValueError(kind)
