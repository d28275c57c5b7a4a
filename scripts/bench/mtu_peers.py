#!/usr/bin/env python3
"""Run tcpping-diag's MTU modes and the peers on the MTU lab's path; judge each answer.

Called by scripts/bench/mtu.sh (which builds the path and removes it):

    mtu_peers.py [--smoke]

Environment: TCPPING_BIN, MTU_NS_PREFIX (<prefix>-cli is the client, <prefix>-srv the
server), BENCH_REPS (default 3; --smoke: 1), BENCH_OUT (default
bench/runs/<UTC date and time>-mtu; --smoke: bench/smoke/mtu).

Before every run the client and the server forget the path MTUs they learnt, so that each
tool meets the path as a new host would. Runs are interleaved: each repetition runs every
tool on every case once, in turn.
"""
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("TCPPING_BIN", os.path.join(REPO, "target/release/tcpping-diag"))
PREFIX = os.environ["MTU_NS_PREFIX"]
SMOKE = "--smoke" in sys.argv[1:]
REPS = 1 if SMOKE else int(os.environ.get("BENCH_REPS", "3"))
STAMP = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%MZ")
OUT = os.environ.get("BENCH_OUT") or os.path.join(
    REPO, "bench", os.path.join("smoke", "mtu") if SMOKE else os.path.join("runs", f"{STAMP}-mtu"))
PORT = 12001
MTU = 1400
CAP = 60  # seconds a tool may take

# case: (name, what the lab does, target address, v6, router that reports or None)
CASES = [
    ("ptb-v4", "r1-r2 MTU 1400, r1 says fragmentation needed", "10.81.3.2", False, "10.81.1.1"),
    ("hole-v4", "r1-r2 MTU 1400, r1's ICMP dropped: black hole", "10.81.3.3", False, None),
    ("ptb-v6", "r1-r2 MTU 1400, r1 says packet too big", "fd81:3::2", True, "fd81:1::1"),
    ("hole-v6", "r1-r2 MTU 1400, r1's ICMPv6 dropped: black hole", "fd81:3::3", True, None),
]
# The far end of the small link (r2), which a tool that gives each hop's MTU names.
BEYOND = {False: "10.81.2.2", True: "fd81:2::2"}
if SMOKE:
    CASES = CASES[:2]


def hostport(a, v6):
    return f"[{a}]:{PORT}" if v6 else f"{a}:{PORT}"


def ns(node, argv):
    return ["ip", "netns", "exec", f"{PREFIX}-{node}"] + argv


def forget():
    for node in ("cli", "srv"):
        for fam in ("-4", "-6"):
            subprocess.run(ns(node, ["ip", fam, "route", "flush", "cache"]), check=False)


def last_json(out, kind):
    for line in reversed(out.splitlines()):
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if v.get("type") == kind:
            return v
    return None


# Each judge reads a tool's output: (what it says, in short words; the finding as
# (mtu or None, router or None, black hole named: bool)).
def j_pmtu(out, case):
    v = last_json(out, "pmtu")
    if not v:
        return "no answer", (None, None, False)
    what = f"MTU {v['path_mtu']}" + (f", reported by {v['router']}" if v["router"] else "") + \
        (", black hole" if v["black_hole"] else "")
    return what, (v["path_mtu"], v["router"], v["black_hole"])


def j_trace(out, case):
    v = last_json(out, "trace")
    m = (v or {}).get("mtu")
    if not m:
        return "nothing about the MTU", (None, None, False)
    what = f"hop {m['hop']} ({m['router']})" + (f": MTU {m['mtu']}" if m["mtu"] else "") + \
        (", black hole" if m["black_hole"] else "")
    return what, (m["mtu"], m["router"], m["black_hole"])


def j_ping_s(out, case):
    pings = [json.loads(l) for l in out.splitlines() if l.startswith("{") and '"type":"ping"' in l]
    notes = [l for l in out.splitlines() if '"mtu_black_hole"' in l]
    if notes:
        return "black hole (large time out, 64-byte pass)", (None, None, True)
    for p in pings:
        ic = p.get("icmp") or {}
        if ic.get("mtu"):
            return f"ping 1: MTU {ic['mtu']} from {ic['from']}", (ic["mtu"], ic["from"], False)
    return ", ".join(p["status"] for p in pings) or "no answer", (None, None, False)


def j_tracepath(out, case):
    hop = re.search(r"^\s*\d+:\s+(\S+)\s+\S+ms pmtu (\d+)", out, re.M)
    resume = re.search(r"Resume: pmtu (\d+)", out)
    if hop:
        return f"pmtu {hop.group(2)} at {hop.group(1)}", (int(hop.group(2)), hop.group(1), False)
    if resume:
        silent = "no reply" in out
        return f"pmtu {resume.group(1)}" + (", then no reply" if silent else ""), (int(resume.group(1)), None, False)
    return "no answer", (None, None, False)


def j_scamper(out, case):
    mtus = re.findall(r"^\s*\d+\s+(\S+)\s+.*\[mtu: (\d+)\]", out, re.M)
    if not mtus:
        return ("all *" if "*" in out else "no answer"), (None, None, False)
    first_small = next(((a, int(m)) for a, m in mtus if int(m) < 1500), None)
    if first_small:
        return f"mtu {first_small[1]} from hop {first_small[0]} on", (first_small[1], first_small[0], False)
    return f"mtu {mtus[-1][1]}", (int(mtus[-1][1]), None, False)


def j_ping_do(out, case):
    m = re.search(r"From (\S+) icmp_seq=\d+ Frag needed and DF set \(mtu = (\d+)\)", out) or \
        re.search(r"From (\S+) icmp_seq=\d+ Packet too big: mtu=(\d+)", out)
    if m:
        return f"MTU {m.group(2)} from {m.group(1)}", (int(m.group(2)), m.group(1), False)
    m = re.search(r"mtu=(\d+)", out)
    if m:
        return f"local error, mtu {m.group(1)}", (int(m.group(1)), None, False)
    loss = re.search(r"(\d+)% packet loss", out)
    return (f"{loss.group(1)}% loss" if loss else "no answer"), (None, None, False)


# tool: (name, argv for a case, judge)
TOOLS = [
    ("tcpping-diag --pmtu", lambda a, v6: [BIN, hostport(a, v6), "--pmtu", "-W", "1", "--json"], j_pmtu),
    ("tcpping-diag trace --size 1500", lambda a, v6: [BIN, "trace", hostport(a, v6), "--size", "1500", "-W", "1", "-m", "5", "--json"], j_trace),
    ("tcpping-diag -s 1400", lambda a, v6: [BIN, hostport(a, v6), "-n", "2", "-i", "0.2", "-W", "1", "-s", "1400", "--json"], j_ping_s),
    ("tracepath", lambda a, v6: ["tracepath", "-n", "-m", "5"] + (["-6"] if v6 else []) + [a], j_tracepath),
    ("scamper trace -M", lambda a, v6: ["scamper", "-c", "trace -M -m 5", "-i", a], j_scamper),
    ("ping -M do -s", lambda a, v6: ["ping", "-n", "-c", "2", "-W", "1", "-M", "do", "-s", "1452" if v6 else "1472", a], j_ping_do),
]


def right(case, found):
    """Whether a finding names the fault: the MTU and who reports it, or the black hole."""
    _, _, _, v6, router = case
    mtu, who, hole = found
    if router:
        return mtu == MTU and who in (router, BEYOND[v6])
    return hole and (mtu in (None, MTU))


def main():
    os.makedirs(os.path.join(OUT, "raw"), exist_ok=True)
    runs = {}
    for rep in range(REPS):
        for case in CASES:
            name, _, addr, v6, _ = case
            for tool, argv, judge in TOOLS:
                forget()
                t0 = time.monotonic()
                try:
                    p = subprocess.run(ns("cli", argv(addr, v6)), capture_output=True, text=True, timeout=CAP)
                    out, timed_out = p.stdout + p.stderr, False
                except subprocess.TimeoutExpired as e:
                    out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
                    timed_out = True
                took = time.monotonic() - t0
                what, found = judge(out, case)
                if timed_out:
                    what += f" (killed after {CAP} s)"
                safe = re.sub(r"[^A-Za-z0-9]+", "_", tool)
                with open(os.path.join(OUT, "raw", f"{name}-{safe}-{rep + 1}.txt"), "w") as f:
                    f.write(" ".join(argv(addr, v6)) + "\n\n" + out)
                runs.setdefault((name, tool), []).append(
                    {"what": what, "right": right(case, found), "seconds": took})
                print(f"{name:8} {tool:32} {took:6.2f}s  {what}", flush=True)
    rows = []
    for case in CASES:
        for tool, _, _ in TOOLS:
            rs = runs[(case[0], tool)]
            rows.append({
                "case": case[0], "lab": case[1], "tool": tool,
                "says": rs[-1]["what"], "right": all(r["right"] for r in rs),
                "median_s": statistics.median(r["seconds"] for r in rs),
                "max_s": max(r["seconds"] for r in rs), "reps": len(rs),
            })
    meta = {"kind": "mtu", "generated": STAMP, "command": "scripts/bench.sh mtu" + (" --smoke" if SMOKE else ""),
            "host": platform.node(), "kernel": platform.release(), "reps": REPS, "rows": rows}
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(meta, f, indent=1)
    lines = [f"# MTU findings: tcpping-diag and peers ({STAMP})", "",
             f"`{meta['command']}`, kernel {meta['kernel']}, {REPS} interleaved repetitions; "
             "path cli - r1 = r2 - srv, r1 = r2 MTU 1400. *Right*: names MTU 1400 and where (the "
             "router that reports it, or the first hop behind the small link), or names the black "
             "hole, in every repetition.", "",
             "| case | tool | what it says | right | wall time, median (max) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['tool']} | {r['says']} | {'yes' if r['right'] else 'no'} | "
                     f"{r['median_s']:.2f} s ({r['max_s']:.2f} s) |")
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nresults: {OUT}")


if __name__ == "__main__":
    main()
