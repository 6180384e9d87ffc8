#!/usr/bin/env python3
"""Host reduction against the Public Suffix List's own algorithm.

    python3 t/unit/psl.py UNITS [--list FILE] [--hosts N] [--seed S]

Generates N hosts from the list's rules (labels before normal, wildcard,
exception and IDN rules, in punycode and in UTF-8; private-section rules,
which the gate ignores; hosts of up to 127 labels; bare rules and the
parents of wildcards) and from junk, asks `UNITS reduce` for each, and
compares with what this file works out on its own: the host rules of
README.md ("How a request is judged") and the algorithm of the list
(https://publicsuffix.org/list/, "Algorithm"), ICANN section only.
Prints how many agree and each disagreement; exits 1 on any.
"""

import argparse
import random
import string
import subprocess
import sys

LIST = "/usr/share/publicsuffix/public_suffix_list.dat"
LDH = set(string.ascii_lowercase + string.digits + "-")
HEX = set(string.hexdigits.lower())


def punycode(name):
    """A rule's labels as a host carries them: non-ASCII ones as xn--."""
    return ".".join(label if label.isascii()
                    else "xn--" + label.encode("punycode").decode()
                    for label in name.split("."))


def read_list(path):
    """(icann, private): each a set of rules as written, in punycode."""
    sections = {"icann": set(), "private": set()}
    section = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("//"):
                if "===BEGIN ICANN DOMAINS===" in line:
                    section = "icann"
                elif "===BEGIN PRIVATE DOMAINS===" in line:
                    section = "private"
                elif "===END" in line:
                    section = None
                continue
            words = line.split()
            if words and section:
                sections[section].add(words[0])
    return sections["icann"], sections["private"]


class Psl:
    def __init__(self, rules):
        self.normal, self.wildcard, self.exception = set(), set(), set()
        for rule in rules:
            if rule.startswith("!"):
                self.exception.add(punycode(rule[1:]))
            elif rule.startswith("*."):
                self.wildcard.add(punycode(rule[2:]))
            else:
                self.normal.add(punycode(rule))

    def registrable(self, labels):
        """The list's algorithm: the matching rules, the prevailing one
        (an exception, else the one of most labels, else "*"), the public
        suffix it gives, and one label more; None for none."""
        n = len(labels)
        matched = []                  # (labels of the public suffix, rule)
        for k in range(1, n + 1):
            suffix = ".".join(labels[n - k:])
            if suffix in self.exception:
                matched.append((k - 1, "exception"))
            if suffix in self.normal:
                matched.append((k, "normal"))
            if k >= 2 and ".".join(labels[n - k + 1:]) in self.wildcard:
                matched.append((k, "wildcard"))
        exceptions = [m for m in matched if m[1] == "exception"]
        if exceptions:
            public = exceptions[0][0]
        elif matched:
            public = max(m[0] for m in matched)
        else:
            public = 1
        if public >= n:
            return None
        return ".".join(labels[n - public - 1:])


def expected(psl, host):
    """What README.md says the gate makes of a host of ASCII bytes, no
    port and no brackets: KIND DOMAIN."""
    if host == b"":
        return "missing "
    if any(b < 0x20 or b == 0x7f for b in host):
        return "invalid "
    if any(b >= 0x80 for b in host):
        raise ValueError("expected() takes ASCII hosts")
    name = host.decode().lower()
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    if not name or len(name) > 253:
        return "invalid "
    for label in labels:
        if (not label or len(label) > 63 or not set(label) <= LDH
                or label[0] == "-" or label[-1] == "-"):
            return "invalid "
    last = labels[-1]
    if last.isdigit() or (last.startswith("0x") and set(last[2:]) <= HEX):
        return "ip_literal "
    domain = psl.registrable(labels)
    return "valid " + domain if domain else "invalid "


class Hosts:
    """Hosts made from the rules: (bytes sent, bytes to expect from)."""

    def __init__(self, rng, icann, private):
        self.rng = rng
        self.icann = sorted(icann)
        self.private = sorted(private)
        self.normal = [r for r in self.icann if r[0] not in "!*"]
        self.wildcard = [r for r in self.icann if r.startswith("*.")]
        self.exception = [r for r in self.icann if r.startswith("!")]
        self.idn = [r for r in self.icann if not r.isascii()]

    def label(self):
        rng = self.rng
        if rng.random() < 0.1:
            return rng.choice(["www", "city", "a", "0x7f", "xn--55qx5d",
                               "1", "-a", "a" * 63, "a" * 64])
        size = rng.choice([1, 1, 2, 3, 5, 8, 12])
        return "".join(rng.choice(string.ascii_lowercase + string.digits)
                       for _ in range(size))

    def labels(self, most=3):
        return [self.label() for _ in range(self.rng.randint(1, most))]

    def under(self, rule, most=3):
        return ".".join(self.labels(most) + [rule])

    def star(self, rule):
        return self.label() + rule[1:]

    def deep(self, rule):
        """As many one-letter labels as 253 bytes hold."""
        room = (253 - len(rule)) // 2
        return ".".join(["a"] * self.rng.randint(room // 2, room) + [rule])

    def junk(self):
        rng = self.rng
        alphabet = (string.ascii_letters + string.digits + "-._"
                    + "..." + "\x00\x01\x1f\x7f\"\\%/ x")
        text = "".join(rng.choice(alphabet)
                       for _ in range(rng.randint(1, 40)))
        if rng.random() < 0.3:
            text += "." + rng.choice(self.icann).lstrip("!*.")
        return punycode(text) if not text.isascii() else text

    def ip(self):
        rng = self.rng
        parts = [rng.choice(["127", "0x7f", "0X7F", "017700000001", "1",
                             "0x", "0xg", "0x1f", "08", "a"])
                 for _ in range(rng.randint(1, 4))]
        return ".".join(parts) + rng.choice(["", "", "."])

    def one(self):
        rng = self.rng
        kind = rng.random()
        if kind < 0.25:
            host = self.under(rng.choice(self.normal))
        elif kind < 0.32:
            host = rng.choice(self.normal)
        elif kind < 0.40:
            rule = rng.choice(self.wildcard)
            host = rng.choice([rule[2:], self.star(rule),
                               self.under(self.star(rule), 2)])
        elif kind < 0.45:
            rule = rng.choice(self.exception)[1:]
            host = rng.choice([rule, self.under(rule, 2)])
        elif kind < 0.55:
            host = self.under(rng.choice(self.idn))
        elif kind < 0.65:
            host = self.under(rng.choice(self.private).lstrip("!*."))
        elif kind < 0.72:
            host = self.deep(rng.choice(self.normal + self.wildcard[:5])
                             .replace("*", "x"))
        elif kind < 0.80:
            host = self.ip()
        else:
            host = self.junk()
        if rng.random() < 0.1 and host.isascii():
            host = "".join(c.upper() if rng.random() < 0.5 else c
                           for c in host)
        if rng.random() < 0.05:
            host += "."
        sent = host.encode()
        # IDN rules also as written: the gate turns them into punycode
        if not host.isascii():
            return sent, punycode(host).encode()
        return sent, sent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("units")
    parser.add_argument("--list", default=LIST)
    parser.add_argument("--hosts", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    icann, private = read_list(args.list)
    psl = Psl(icann)
    hosts = Hosts(random.Random(args.seed), icann, private)
    cases = [hosts.one() for _ in range(args.hosts)]
    cases = [(sent, ascii) for sent, ascii in cases if b"\n" not in sent]

    out = subprocess.run([args.units, "reduce"], check=True,
                         input=b"".join(sent + b"\n" for sent, _ in cases),
                         capture_output=True).stdout.decode().split("\n")
    wrong = 0
    kinds = {}
    for (sent, ascii), got in zip(cases, out):
        want = expected(psl, ascii)
        kinds[want.split(" ")[0]] = kinds.get(want.split(" ")[0], 0) + 1
        if got != want:
            wrong += 1
            if wrong <= 20:
                print("# %r: gate %r, list %r" % (sent, got, want))
    print("# %d hosts (seed %d, %s): %d disagree" % (
        len(cases), args.seed,
        ", ".join("%s %d" % kv for kv in sorted(kinds.items())), wrong))
    sys.exit(1 if wrong or len(out) < len(cases) else 0)


if __name__ == "__main__":
    main()
