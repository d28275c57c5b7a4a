#!/usr/bin/env python3
"""Before/after: two builds of tcpping-diag measured in turns, in one run.

    scripts/bench.sh before-after BEFORE_BIN [--rounds N] [--smoke]

BEFORE_BIN is the binary of the earlier commit; the after binary is $TCPPING_BIN (the
working tree's release build). Each round runs every case once with each binary, the order
alternating between rounds (A B, then B A, ...), so the machine's drift and noise fall on
both alike. Each case reports both medians, their tails (the slowest and fastest round), and
the ratio after / before of the medians.

The cases are the probe kinds a refactor of the probe layer touches:
- connect pings, -i 0, one connection per ping, on loopback (pings/s);
- --persistent pings, -i 0, on loopback (pings/s);
- --syn -i 0 across a router namespace (probes/s, every verdict counted, peak RSS);
- --syn timing fidelity across the router: |reported − wire| median and p99 against tcpdump;
- many targets: 50 loopback targets at -i 0.02 for 200 probes each (CPU seconds);
- trace --probe syn across the router, 3 cycles (wall seconds).

Results: bench/runs/<UTC start>-before-after/results.{json,md}.
"""

import argparse
import datetime
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import pcap  # noqa: E402
from bench import log, run_measured, sh, nsx, free_port, stop  # noqa: E402


def with_bin(path, fn, *a, **kw):
    """Run fn with bench's binary set to path (bench's helpers read bench.BIN)."""
    saved = bench.BIN
    bench.BIN = path
    try:
        return fn(*a, **kw)
    finally:
        bench.BIN = saved


def summary_of(text):
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if o.get("type") == "summary":
                return o
    return {}


def case_connect(binary, port, n):
    rc, out, ru, wall = run_measured([binary, f"127.0.0.1:{port}", "-n", str(n), "-i", "0",
                                      "-q", "--json"], timeout=600)
    s = summary_of(out)
    return {"rate": s.get("sent", 0) / wall if wall else None,
            "answered": s.get("received")}


def case_persistent(binary, port, n):
    rc, out, ru, wall = run_measured([binary, f"127.0.0.1:{port}", "-n", str(n), "-i", "0",
                                      "--persistent", "-q", "--json"], timeout=600, rss=True)
    s = summary_of(out)
    return {"rate": s.get("sent", 0) / wall if wall else None, "rss_mb": ru.peak_kb / 1024}


def case_syn_rate(binary, cns, target, n):
    rc, out, ru, wall = run_measured([binary, target, "--syn", "-i", "0", "-n", str(n), "-q",
                                      "--json"], ns=cns, timeout=600, rss=True)
    s = summary_of(out)
    secs = (s.get("elapsed_ms") or 0) / 1000
    return {"rate": s.get("sent", 0) / secs if secs else None,
            "answered": s.get("received", 0) + s.get("refused", 0),
            "rss_mb": ru.peak_kb / 1024, "cpu_s": ru.ru_utime + ru.ru_stime}


def case_syn_fidelity(binary, cns, target, client_ip, port, n, rep):
    cap = bench.Capture(cns, "tpyc0", f"tcp port {port}", f"ba-fid-{rep}-{os.path.basename(binary)}")
    pings, _, _, _ = with_bin(binary, bench.client_json, target,
                              ["--syn", "-n", str(n), "-i", "0.01"], ns=cns)
    pkts = cap.packets()
    syn_at = {p.seq: p.t for p in pkts if p.src == client_ip and p.flags & pcap.SYN
              and not p.flags & pcap.ACK}
    synack_at = {(p.ack - 1) % 2**32: p.t for p in pkts if p.dst == client_ip
                 and p.flags & pcap.SYN and p.flags & pcap.ACK}
    pairs = []
    for p in pings:
        s = p.get("tcp_seq")
        if p.get("status") == "reply" and s in syn_at and s in synack_at:
            pairs.append((p["connect_ms"] * 1000, (synack_at[s] - syn_at[s]) * 1e6))
    e = bench.errors_us(pairs) or {}
    return {"median_abs": e.get("median_abs"), "p99_abs": e.get("p99_abs"), "n": e.get("n")}


def case_multi(binary, ports, n):
    targets = [f"127.0.0.1:{p}" for p in ports]
    rc, out, ru, wall = run_measured([binary, *targets, "-n", str(n), "-i", "0.02", "-q",
                                      "--connect-only", "--json"], timeout=600, rss=True)
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "wall_s": wall, "rss_mb": ru.peak_kb / 1024}


def case_trace(binary, cns, target):
    rc, out, ru, wall = run_measured([binary, "trace", target, "--cycles", "3", "--json"],
                                     ns=cns, timeout=600)
    verdict = None
    for line in out.splitlines():
        if '"verdict"' in line:
            try:
                verdict = json.loads(line).get("verdict")
            except ValueError:
                pass
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "verdict": verdict}


def stats_of(values):
    vals = sorted(v for v in values if isinstance(v, (int, float)))
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1],
            "runs": values}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", help="the earlier build's tcpping-diag binary")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--smoke", action="store_true", help="tiny counts, 2 rounds")
    a = ap.parse_args()
    before, after = os.path.abspath(a.before), bench.BIN
    for b in (before, after):
        if not os.access(b, os.X_OK):
            sys.exit(f"before_after.py: not an executable: {b}")
    rounds = 2 if a.smoke else a.rounds
    k = 0.05 if a.smoke else 1.0
    n_conn, n_pers, n_syn = int(4000 * k), int(40000 * k), int(200000 * k)
    n_fid, n_multi = max(20, int(400 * k)), max(5, int(200 * k))

    started = datetime.datetime.now(datetime.timezone.utc)
    out_dir = os.environ.get("BENCH_OUT") or os.path.join(
        bench.RUNS_DIR, started.strftime("%Y-%m-%dT%H%MZ") + "-before-after")
    os.makedirs(out_dir, exist_ok=True)
    log(f"before: {before}\n  after: {after}\n  results go to {os.path.relpath(out_dir, bench.REPO)}/")
    info = bench.machine_info()
    for b in (before, after):
        info.setdefault("versions", []).append(sh([b, "--version"], check=False).stdout.strip())

    cases = {}  # case -> which -> list of dicts

    def add(case, which, d):
        cases.setdefault(case, {"before": [], "after": []})[which].append(d)

    port = free_port()
    srv = with_bin(after, bench.start_server, "tcpping-diag", port)
    mports, msrv = [], []
    while len(mports) < 50:
        p = free_port()
        if p != port and p not in mports:
            mports.append(p)
    cns, rns, sns = bench.syn_lab()
    sport = 12001
    ssrv = with_bin(after, bench.start_server_ns, sns, "10.96.2.2", sport)
    starget = f"10.96.2.2:{sport}"
    try:
        for p in mports:
            msrv.append(with_bin(after, bench.start_server, "tcpping-diag", p))
        for r in range(rounds):
            order = [("before", before), ("after", after)]
            if r % 2:
                order.reverse()
            for which, b in order:
                add("connect", which, case_connect(b, port, n_conn))
                add("persistent", which, case_persistent(b, port, n_pers))
                add("syn_rate", which, case_syn_rate(b, cns, starget, n_syn))
                add("syn_fidelity", which,
                    case_syn_fidelity(b, cns, starget, "10.96.1.2", sport, n_fid, r))
                add("multi", which, case_multi(b, mports, n_multi))
                add("trace", which, case_trace(b, cns, starget))
            log(f"  round {r + 1}/{rounds} done")
    finally:
        for p in [srv, ssrv, *msrv]:
            stop(p)
        bench.cleanup()

    figures = [("connect", "rate", "connect pings -i 0 on loopback", "pings/s", True),
               ("persistent", "rate", "--persistent pings -i 0 on loopback", "pings/s", True),
               ("persistent", "rss_mb", "--persistent: peak RSS", "MB", False),
               ("syn_rate", "rate", "--syn -i 0 across a router", "probes/s", True),
               ("syn_rate", "answered", "--syn -i 0: probes answered", "", True),
               ("syn_rate", "rss_mb", "--syn -i 0: peak RSS", "MB", False),
               ("syn_fidelity", "median_abs", "--syn: median abs(reported − wire)", "µs", False),
               ("syn_fidelity", "p99_abs", "--syn: p99 abs(reported − wire)", "µs", False),
               ("multi", "cpu_s", "50 targets × 200 connect probes: CPU", "s", False),
               ("trace", "wall_s", "trace --probe syn, 3 cycles, 2 hops: wall", "s", False),
               ("trace", "cpu_s", "trace: CPU", "s", False)]
    rows = []
    for case, field, title, unit, higher_better in figures:
        b = stats_of([d.get(field) for d in cases[case]["before"]])
        af = stats_of([d.get(field) for d in cases[case]["after"]])
        ratio = (af["median"] / b["median"]) if b and af and b["median"] else None
        rows.append({"case": case, "field": field, "title": title, "unit": unit,
                     "higher_is_better": higher_better, "before": b, "after": af,
                     "ratio_after_before": ratio})
    verdicts = {w: [d.get("verdict") for d in cases["trace"][w]] for w in ("before", "after")}
    doc = {"kind": "before-after", "generated": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
           "command": "scripts/bench.sh before-after " + " ".join(sys.argv[1:]),
           "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"), "rounds": rounds,
           "smoke": a.smoke, "machine": info, "before": before, "after": after,
           "figures": rows, "trace_verdicts": verdicts, "raw": cases}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)

    def f3(v):
        return "–" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}")

    md = [f"# Before/after: {doc['started']}", "",
          f"{rounds} rounds, each case once per binary per round, order alternating. "
          "Median (min–max over rounds); ratio = after / before of the medians.", "",
          f"- before: `{info['versions'][0]}`", f"- after: `{info['versions'][1]}`",
          f"- machine: {info['nproc']} CPUs, {info['cpu']}, load at start "
          f"{' '.join(info['loadavg_start'])}", "",
          "| figure | unit | before | after | after/before |", "|---|---|---|---|---|"]
    for r in rows:
        b, af = r["before"], r["after"]
        cell = lambda s: "–" if not s else f"{f3(s['median'])} ({f3(s['min'])}–{f3(s['max'])})"  # noqa: E731
        ratio = r["ratio_after_before"]
        ratio_s = "–" if ratio is None else f"{ratio:.3f}"
        md.append(f"| {r['title']} | {r['unit']} | {cell(b)} | {cell(af)} | {ratio_s} |")
    md += ["", f"trace verdicts: before {verdicts['before']}, after {verdicts['after']}", ""]
    if a.smoke:
        md.insert(2, bench.SMOKE_SAYS + "\n")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))
    if not a.smoke and not os.environ.get("BENCH_OUT"):
        bench.write_index()
    return 0


if __name__ == "__main__":
    sys.exit(main())
