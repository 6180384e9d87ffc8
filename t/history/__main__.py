"""The history checker: seeded, randomized histories of a fleet of real
nginx nodes on one real Redis and the filing API stand-in, checked for the
P9 properties (see check.py).

    python3 t/history --nginx build/sbin/nginx [--runs N] [--seed S]
                      [--profile short|long] [--seconds T] [--shrink N]
                      [--only KIND,...] [--asan] [--keep] [--save FILE]
    python3 t/history --load FILE.SEED

Each history is one seed (S, S+1, ...): a one-line summary each, then for
one that fails, the properties it violated, the history of the first, and
the shortest failing history found by running smaller schedules of the same
seed (its domain alone and what came before the violation, the global
faults dropped, one half of its scenarios) at most --shrink times.  --save
keeps each history, --load checks a kept one again (to read every
violation's history, or to try the checker on it).  Exit status 0 when no
history violated anything, 1 when some did, 2 when a history could not be
run."""

import argparse
import os
import pickle
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from check import Checker                                     # noqa: E402
from report import describe_violations, story, summary        # noqa: E402
from run import Runner                                        # noqa: E402
from schedule import generate                                 # noqa: E402


def say(text=""):
    print(text, flush=True)


def run_one(args, schedule):
    start = time.time()
    h = Runner(args.nginx, schedule, keep=args.keep).run()
    if args.save:
        with open("%s.%d" % (args.save, schedule.seed), "wb") as f:
            pickle.dump(h, f)
    checker = Checker(h, asan=args.asan)
    violations = checker.run()
    return h, checker, violations, time.time() - start


def target_of(violations):
    """the violation a shorter history must show again: the first of the
    first property violated, (a) before (b) before (c)"""
    for prop in "abc":
        for v in violations:
            if v.prop == prop:
                return v
    return None


def same(v, target):
    return v.prop == target.prop and v.kind == target.kind


def shrink(args, schedule, target):
    """smaller schedules of the same seed, while they still fail"""
    best = None
    tries = 0
    current = schedule
    while tries < args.shrink:
        candidates = []
        if len(current.domains) > 1 and target.domain in current.domains:
            candidates.append(("only %s, what came before the violation"
                               % target.domain,
                               current.reduced(domains=[target.domain],
                                               until=target.at_rel)))
        if any(s.domain is None and s.kind != "close_changes"
               for s in current.scenarios):
            candidates.append(("without the global faults",
                               current.reduced(drop_global=True)))
        if len(current.scenarios) > 1:
            candidates.append(("first half", current.reduced(part=0)))
            candidates.append(("second half", current.reduced(part=1)))
        progress = False
        for why, cand in candidates:
            if tries >= args.shrink:
                break
            if cand.size() >= current.size() or not cand.scenarios:
                continue
            tries += 1
            h, checker, violations, elapsed = run_one(args, cand)
            again = [v for v in violations if same(v, target)]
            say("  shrink %d/%d (%s): %s" % (tries, args.shrink, why,
                                            summary(h, violations, elapsed)))
            if again:
                best = (cand, h, checker, again[0])
                current = cand
                progress = True
                break
        if not progress:
            break
    return best


def main():
    # a termination stops what a history started (its finally) on the way
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, frame: sys.exit(128 + number))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nginx")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--profile", choices=("short", "long"),
                        default="short")
    parser.add_argument("--seconds", type=float, default=None,
                        help="a run's length instead of the profile's")
    parser.add_argument("--shrink", type=int, default=None,
                        help="smaller histories tried after a failure "
                        "(3)")
    parser.add_argument("--asan", action="store_true",
                        default=bool(os.environ.get("ICP_GATE_ASAN")))
    parser.add_argument("--keep", action="store_true",
                        default=bool(os.environ.get("ICP_GATE_KEEP")))
    parser.add_argument("--only", metavar="KINDS",
                        help="scenarios of these kinds alone (comma-separated)")
    parser.add_argument("--save", metavar="FILE",
                        help="keep each history in FILE.SEED (pickle)")
    parser.add_argument("--load", metavar="FILE",
                        help="check a kept history again, running nothing")
    args = parser.parse_args()
    if not args.load and not args.nginx:
        parser.error("--nginx is needed to run histories")
    if args.load:
        with open(args.load, "rb") as f:
            h = pickle.load(f)
        checker = Checker(h, asan=args.asan)
        violations = checker.run()
        say(summary(h, violations, h.end - h.t0))
        for line in describe_violations(checker, violations, limit=100):
            say("  " + line)
        for v in violations:
            say("story of (%s) %s on %s:" % (v.prop, v.kind, v.domain))
            for line in story(h, checker, v):
                say(line)
        return 1 if violations else 0
    if args.shrink is None:
        args.shrink = 3
    seed = args.seed if args.seed is not None else int(time.time()) % 100000

    failed = []
    for i in range(args.runs):
        schedule = generate(seed + i, args.profile,
                            args.only.split(",") if args.only else None)
        if args.seconds:
            schedule.duration = args.seconds
        try:
            h, checker, violations, elapsed = run_one(args, schedule)
        except Exception as e:
            say("history seed %d could not be run: %r" % (seed + i, e))
            return 2
        say(summary(h, violations, elapsed))
        for note in checker.drift[:3]:
            say("  note: MONITOR missed a change, resynced at %+.3fs: %s" % (
                checker.rel(note[0]), note[1]))
        for _, note in h.notes:
            say("  note: " + note)
        if not violations:
            continue
        failed.append(seed + i)
        say("seed %d violates:" % (seed + i))
        for line in describe_violations(checker, violations):
            say("  " + line)
        target = target_of(violations)
        target.at_rel = target.at - h.t0
        say("the history of the first, (%s) %s:" % (target.prop, target.kind))
        for line in story(h, checker, target):
            say(line)
        if target.domain and args.shrink:
            best = shrink(args, schedule, target)
            if best:
                cand, h2, checker2, v2 = best
                say("shortest failing history found, seed %d:" % (seed + i))
                for line in cand.describe().splitlines():
                    say("  " + line)
                for line in story(h2, checker2, v2):
                    say(line)
            else:
                say("no shorter history failed the same way; the shortest "
                    "is the whole one, seed %d:" % (seed + i))
                for line in schedule.describe().splitlines():
                    say("  " + line)
        else:
            for line in schedule.describe().splitlines():
                say("  " + line)
    say("history: %d histories (seeds %d..%d, %s), %d with violations%s" % (
        args.runs, seed, seed + args.runs - 1, args.profile, len(failed),
        ": seeds " + ", ".join(map(str, failed)) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
