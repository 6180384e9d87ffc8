"""What Redis held, rebuilt from MONITOR: the commands Redis carried out,
in its order and with its time, grouped as they took effect (a MULTI ...
EXEC, a script with the commands it ran), applied to a model of the keys
the gate uses (expiry included: a key is gone from its expiry time on)."""

import bisect

DOMAIN_PREFIX = "icp:domain:"
PURGED_PREFIX = "icp:purged:"
STATUSES = ("filed", "pending", "revoked", "unfiled")

SCRIPT_COMMANDS = ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL",
                   "FCALL_RO")


class Group:
    """Commands that took effect as one: ts (Redis time of the first),
    client ("127.0.0.1:PORT" of who sent them), cmds ([args, ...])."""

    __slots__ = ("ts", "client", "cmds", "head")

    def __init__(self, ts, client, head):
        self.ts = ts
        self.client = client
        self.head = head        # the command that made it (EXEC, EVALSHA...)
        self.cmds = []


def group_lines(lines):
    """MONITOR lines (ts, client, args) -> [Group] in Redis's order.  Redis
    7.0 shows a script's command first and then what it ran (client
    "lua"); the commands of a MULTI when EXEC runs them, before the EXEC."""
    groups = []
    multi = {}          # client -> Group while its MULTI is open
    script = None       # the script whose "lua" lines come now
    for ts, client, args in lines:
        if not args:
            continue
        name = args[0].upper()
        if client == "lua":
            if script is None:
                script = Group(ts, "lua", "?")
                groups.append(script)
            script.cmds.append(args)
            continue
        script = None
        if name == "MULTI":
            multi[client] = Group(None, client, "EXEC")
            continue
        if client in multi:
            g = multi[client]
            if name == "EXEC":
                del multi[client]
                g.ts = g.ts or ts
                groups.append(g)
            elif name == "DISCARD":
                del multi[client]
            else:
                g.ts = g.ts or ts
                g.cmds.append(args)
                if name in SCRIPT_COMMANDS:
                    script = g          # its lua lines join the transaction
            continue
        g = Group(ts, client, name)
        groups.append(g)
        if name in SCRIPT_COMMANDS:
            script = g
        else:
            g.cmds.append(args)
    return groups


def tracked(key):
    return key.startswith(DOMAIN_PREFIX) or key.startswith(PURGED_PREFIX)


def keys_of(args):
    """the keys a command writes"""
    name = args[0].upper()
    if name in ("DEL", "UNLINK"):
        return args[1:]
    if name in ("FLUSHALL", "FLUSHDB"):
        return ["*"]
    if len(args) > 1 and name in WRITERS:
        return [args[1]]
    return []


class Value:
    """a key's value: fields (a dict for a hash, {"": s} for a string)
    and its expiry (Redis time, None: none)"""

    __slots__ = ("fields", "expire_at")

    def __init__(self, fields=None, expire_at=None):
        self.fields = dict(fields or {})
        self.expire_at = expire_at

    def copy(self):
        return Value(self.fields, self.expire_at)

    def __eq__(self, other):
        return (isinstance(other, Value) and self.fields == other.fields
                and self.expire_at == other.expire_at)


class Store:
    """the tracked keys of one Redis, as the commands made them"""

    def __init__(self):
        self.keys = {}

    def get(self, key, now):
        v = self.keys.get(key)
        if v is not None and v.expire_at is not None and now >= v.expire_at:
            del self.keys[key]
            return None
        return v

    def due(self):
        """(expiry time, key) of every key with an expiry"""
        return [(v.expire_at, k) for k, v in self.keys.items()
                if v.expire_at is not None]

    def set(self, key, value):
        if value is None:
            self.keys.pop(key, None)
        else:
            self.keys[key] = value.copy()

    def clear(self):
        self.keys.clear()

    def apply(self, args, now, only=None):
        """one command at Redis time now; only: touch that key alone"""
        name = args[0].upper()
        if name in ("FLUSHALL", "FLUSHDB"):
            if only is None:
                self.keys.clear()
            else:
                self.keys.pop(only, None)
            return
        if name in ("DEL", "UNLINK"):
            for k in args[1:]:
                if only is None or k == only:
                    self.keys.pop(k, None)
            return
        if len(args) < 2 or name not in WRITERS:
            return
        key = args[1]
        if not tracked(key) or (only is not None and key != only):
            return
        WRITERS[name](self, key, args[2:], now)


def _hset(store, key, rest, now):
    v = store.get(key, now) or Value()
    for i in range(0, len(rest) - 1, 2):
        v.fields[rest[i]] = rest[i + 1]
    store.keys[key] = v


def _hsetnx(store, key, rest, now):
    v = store.get(key, now) or Value()
    if len(rest) >= 2 and rest[0] not in v.fields:
        v.fields[rest[0]] = rest[1]
    store.keys[key] = v


def _hdel(store, key, rest, now):
    v = store.get(key, now)
    if v is None:
        return
    for f in rest:
        v.fields.pop(f, None)
    if not v.fields:
        del store.keys[key]


def _expire_with(scale, absolute):
    def expire(store, key, rest, now):
        v = store.get(key, now)
        if v is None or not rest:
            return
        at = float(rest[0]) * scale + (0 if absolute else now)
        flag = rest[1].upper() if len(rest) > 1 else ""
        old = v.expire_at
        if ((flag == "NX" and old is not None)
                or (flag == "XX" and old is None)
                or (flag == "GT" and (old is None or at <= old))
                or (flag == "LT" and old is not None and at >= old)):
            return
        if at <= now:
            del store.keys[key]
        else:
            v.expire_at = at
    return expire


def _persist(store, key, rest, now):
    v = store.get(key, now)
    if v is not None:
        v.expire_at = None


def _set(store, key, rest, now):
    if not rest:
        return
    old = store.get(key, now)
    expire_at = None
    words = [w.upper() for w in rest[1:]]
    if "NX" in words and old is not None or "XX" in words and old is None:
        return
    for i, w in enumerate(words):
        if i + 1 < len(words):
            n = float(rest[i + 2])
            if w == "EX":
                expire_at = now + n
            elif w == "PX":
                expire_at = now + n / 1000
            elif w == "EXAT":
                expire_at = n
            elif w == "PXAT":
                expire_at = n / 1000
    if "KEEPTTL" in words and old is not None:
        expire_at = old.expire_at
    store.keys[key] = Value({"": rest[0]}, expire_at)


def _setex(scale):
    def setex(store, key, rest, now):
        if len(rest) >= 2:
            store.keys[key] = Value({"": rest[1]}, now + float(rest[0]) * scale)
    return setex


def _getdel(store, key, rest, now):
    store.keys.pop(key, None)


WRITERS = {
    "HSET": _hset, "HMSET": _hset, "HSETNX": _hsetnx, "HDEL": _hdel,
    "EXPIRE": _expire_with(1, False), "PEXPIRE": _expire_with(0.001, False),
    "EXPIREAT": _expire_with(1, True), "PEXPIREAT": _expire_with(0.001, True),
    "PERSIST": _persist, "SET": _set, "SETEX": _setex(1),
    "PSETEX": _setex(0.001), "GETDEL": _getdel,
}


# ---------------------------------------------------------------- verdicts

class Verdict:
    """What a hash (or a node's copy) says: status (None: no valid one),
    source, tag (the icp field: op-N, imp-N, api-N name who wrote it),
    rev (the API answer's version in µs, when the module wrote one)."""

    __slots__ = ("status", "source", "tag", "rev")

    def __init__(self, status, source, tag, rev=None):
        self.status = status if status in STATUSES else None
        self.source = source
        self.tag = tag
        self.rev = rev

    @classmethod
    def of(cls, value):
        if value is None:
            return None
        f = value.fields
        rev = f.get("rev")
        try:
            rev = int(rev) if rev is not None else None
        except ValueError:
            rev = None
        return cls(f.get("status"), f.get("source"), f.get("icp"), rev)

    def operator(self):
        """an operator's or an import's: any source but api, none included"""
        return self.status is not None and self.source != "api"

    def __repr__(self):
        if self.status is None:
            return "invalid(%s)" % (self.tag or "-")
        return "%s/%s/%s" % (self.status, self.source or "-", self.tag or "-")


class Timeline:
    """the states of one domain's hash over time: [(since, Verdict|None)]"""

    def __init__(self):
        self.times = [0.0]
        self.states = [None]

    def add(self, ts, state):
        if self.states and same_verdict(self.states[-1], state):
            return
        self.times.append(ts)
        self.states.append(state)

    def at(self, ts):
        return self.states[bisect.bisect_right(self.times, ts) - 1]

    def during(self, t1, t2):
        """[(since, until, state)] of the states held at some time in
        [t1, t2]"""
        i = max(bisect.bisect_right(self.times, t1) - 1, 0)
        out = []
        while i < len(self.times) and self.times[i] <= t2:
            until = (self.times[i + 1] if i + 1 < len(self.times)
                     else float("inf"))
            out.append((self.times[i], until, self.states[i]))
            i += 1
        return out

    def first_after(self, ts, pred):
        """the first time >= ts the state satisfies pred (inf: never)"""
        for since, until, state in self.during(ts, float("inf")):
            if pred(state):
                return max(since, ts)
        return float("inf")


def same_verdict(a, b):
    """the same verdict, or both none"""
    if a is None or b is None:
        return a is b
    return (a.status, a.source, a.tag, a.rev) == (b.status, b.source, b.tag,
                                                  b.rev)
