#!/usr/bin/env python3
"""The SYN probe engine's rate next to hping3, in one run, interleaved.

    scripts/bench.sh syn-rate [--rounds N] [--n N] [--before BIN] [--smoke]

Lab: client -> router -> server namespaces (tpd-bsyn-c, -r, -s; 10.82.1.0/24 and
10.82.2.0/24), a listener on the server (tcpping-diag serve). Each round runs, in turns
(the order rotating between rounds so the machine's drift falls on all alike):
- ours: `tcpping-diag --syn -i 0 -n N -q --json` (probes concluded per second, every verdict
  counted: replies + refused + timeouts = N; peak RSS, and RSS sampled during the run);
- before (with --before BIN): the same with an earlier build;
- flood: `hping3 -S --flood` for 3 s (sends only: the machine's send-only rate);
- counting: `hping3 -S -i u1 -c M` (sends and counts answers);
- blaster: SYNs received at the server per second during the flood (the forwarding path's
  rate, an iptables counter in the server's namespace).
For each: CPU per core (from /proc/stat), and the load average when the round started.

Results: bench/runs/<UTC date>T<time>Z-syn-rate/results.{json,md} (BENCH_OUT=DIR overrides).
"""

import argparse
import datetime
import json
import os
import re
import statistics
import sys
import threading
import time

os.environ.setdefault("BENCH_NS_PREFIX", "tpd-bsyn-")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import pcap  # noqa: E402
from before_after import with_bin  # noqa: E402
from bench import log, sh, nsx, stop  # noqa: E402

PORT = 12082
SERVER = "10.82.2.2"


def lab():
    cns, rns, sns = bench.ns_create("c"), bench.ns_create("r"), bench.ns_create("s")
    bench.veth(cns, "bsyc0", "10.82.1.2/24", rns, "bsyr0", "10.82.1.1/24")
    bench.veth(rns, "bsyr1", "10.82.2.1/24", sns, "bsys0", f"{SERVER}/24")
    sh(nsx(rns) + ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    sh(["ip", "-n", cns, "route", "add", "default", "via", "10.82.1.1"])
    sh(["ip", "-n", sns, "route", "add", "default", "via", "10.82.2.1"])
    # Count the SYNs that reach the server (the forwarding path's rate).
    sh(nsx(sns) + ["iptables", "-I", "INPUT", "-p", "tcp", "--syn", "--dport", str(PORT)])
    return cns, rns, sns


def syns_at_server(sns):
    r = sh(nsx(sns) + ["iptables", "-nvxL", "INPUT"], check=False)
    for line in r.stdout.splitlines():
        if f"dpt:{PORT}" in line:
            return int(line.split()[0])
    return 0


def cpu_times():
    """Per core: (busy, total) jiffies."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if re.match(r"cpu\d+ ", line):
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + v[4]
                out[line.split()[0]] = (sum(v) - idle, sum(v))
    return out


def cpu_busy(a, b):
    """Per core: share busy between two cpu_times() readings (0..1)."""
    return {k: round((b[k][0] - a[k][0]) / max(1, b[k][1] - a[k][1]), 3) for k in a}


def sample_rss(pid_of, stop_ev, out):
    """Sample the RSS of the tcpping-diag process (pid_of() finds it) every 50 ms."""
    while not stop_ev.is_set():
        pid = pid_of()
        if pid:
            try:
                out.append(bench.proc_status(pid)["VmRSS_kB"])
            except (OSError, ValueError):
                pass
        time.sleep(0.05)


def child_pid(binary):
    """The running process of exactly this binary (other helpers' builds have other paths)."""
    want = os.path.realpath(binary)
    r = sh(["pgrep", "-x", os.path.basename(binary)[:15]], check=False)
    for pid in r.stdout.split():
        try:
            if os.path.realpath(f"/proc/{pid}/exe") == want:
                return int(pid)
        except OSError:
            continue
    return None


def run_ours(binary, cns, n):
    c0 = cpu_times()
    rss, ev = [], threading.Event()
    t = threading.Thread(target=sample_rss,
                         args=(lambda: child_pid(binary), ev, rss))
    t.start()
    try:
        rc, text, ru, wall = bench.run_measured(
            [binary, f"{SERVER}:{PORT}", "--syn", "-i", "0", "-n", str(n), "-q", "--json"],
            ns=cns, rss=True, timeout=600)
    finally:
        ev.set()
        t.join()
    c1 = cpu_times()
    s = {}
    for line in reversed(text.strip().splitlines()):
        try:
            s = json.loads(line)
            break
        except ValueError:
            continue
    secs = (s.get("elapsed_ms") or 0) / 1000
    counted = sum(s.get(k, 0) or 0 for k in
                  ("received", "refused", "timeout", "icmp", "error", "interrupted"))
    cpu = ru.ru_utime + ru.ru_stime
    return {"rate": n / secs if secs and counted == n else None,
            "per_cpu_s": n / cpu if cpu and counted == n else None,
            "elapsed_s": secs, "sent": s.get("sent"), "received": s.get("received"),
            "timeout": s.get("timeout"), "counted": counted, "rc": rc,
            "rss_peak_mb": round(ru.peak_kb / 1024, 1),
            "rss_samples_mb": [round(x / 1024, 1) for x in rss],
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
            "cpu_busy": cpu_busy(c0, c1)}


def run_flood(cns, sns, secs):
    before = syns_at_server(sns)
    c0 = cpu_times()
    usage = os.path.join(bench.TMP, "flood.time")
    r = sh(nsx(cns) + ["/usr/bin/time", "-f", "%U %S", "-o", usage, "timeout", "-s", "INT",
                       str(secs), "hping3", "-S", "-p", str(PORT), "--flood", SERVER],
           check=False)
    c1 = cpu_times()
    got = syns_at_server(sns) - before
    m = re.search(r"(\d+) packets transmitted", r.stdout + r.stderr)
    try:
        cpu = sum(float(x) for x in open(usage).read().split()[-2:])
    except (OSError, ValueError):
        cpu = None
    sent = int(m.group(1)) if m else None
    return {"rate": sent / secs if sent else None, "cpu_s": cpu,
            "per_cpu_s": sent / cpu if sent and cpu else None,
            "server_rate": got / secs, "cpu_busy": cpu_busy(c0, c1)}


def run_fidelity(binary, cns, n, interval):
    """|reported − wire| of --syn (SYN out -> SYN-ACK in on the client's veth, tcpdump),
    matched by sequence number: paced (-i 0.01) and back to back (-i 0, in batches)."""
    cap = bench.Capture(cns, "bsyc0", f"tcp port {PORT}", f"fid-{os.getpid()}-{time.time()}")
    pings, _, _, _ = bench.client_json(f"{SERVER}:{PORT}",
                                       ["--syn", "-n", str(n), "-i", str(interval)],
                                       ns=cns) if binary == bench.BIN else with_bin(
        binary, bench.client_json, f"{SERVER}:{PORT}",
        ["--syn", "-n", str(n), "-i", str(interval)], ns=cns)
    pkts = cap.packets()
    client = "10.82.1.2"
    syn_at = {p.seq: p.t for p in pkts if p.src == client and p.flags & pcap.SYN
              and not p.flags & pcap.ACK}
    ack_at = {(p.ack - 1) % 2**32: p.t for p in pkts if p.dst == client
              and p.flags & pcap.ACK and (p.flags & pcap.SYN or p.flags & pcap.RST)}
    pairs = []
    for p in pings:
        s_ = p.get("tcp_seq")
        if p.get("status") == "reply" and s_ in syn_at and s_ in ack_at:
            pairs.append((p["connect_ms"] * 1000, (ack_at[s_] - syn_at[s_]) * 1e6))
    e = bench.errors_us(pairs) or {}
    e["pings"] = len(pings)
    return e


def run_counting(cns, n):
    c0 = cpu_times()
    t0 = time.monotonic()
    r = sh(nsx(cns) + ["hping3", "-S", "-p", str(PORT), "-i", "u1", "-c", str(n), SERVER],
           check=False)
    wall = time.monotonic() - t0
    c1 = cpu_times()
    m = re.search(r"(\d+) packets transmitted, (\d+) packets received", r.stdout + r.stderr)
    return {"rate": int(m.group(1)) / wall if m else None,
            "answered": int(m.group(2)) if m else None, "cpu_busy": cpu_busy(c0, c1)}


def med(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--before", default=None)
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args([x for x in sys.argv[1:] if x != "syn-rate"])
    if a.smoke:
        a.rounds, a.n = 1, 2000
    flood_s = 1 if a.smoke else 3
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    out_dir = os.environ.get("BENCH_OUT") or os.path.join(
        bench.BENCH_DIR, "smoke" if a.smoke else "runs", "syn-rate" if a.smoke else
        f"{stamp}-syn-rate")
    os.makedirs(out_dir, exist_ok=True)
    cns, rns, sns = lab()
    srv = bench.start_server_ns(sns, SERVER, PORT)
    cases = ["ours", "flood", "counting"] + (["before"] if a.before else [])
    rounds = []
    try:
        for i in range(a.rounds):
            order = cases[i % len(cases):] + cases[:i % len(cases)]
            r = {"load_avg": open("/proc/loadavg").read().split()[:3], "order": order}
            for c in order:
                if c == "ours":
                    r[c] = run_ours(bench.BIN, cns, a.n)
                elif c == "before":
                    r[c] = run_ours(a.before, cns, a.n)
                elif c == "flood":
                    r[c] = run_flood(cns, sns, flood_s)
                else:
                    r[c] = run_counting(cns, max(a.n // 10, 100))
            for name, b in [("ours", bench.BIN)] + ([("before", a.before)] if a.before else []):
                r[f"fid_{name}"] = run_fidelity(b, cns, 50 if a.smoke else 200, 0.01)
                r[f"fid_b2b_{name}"] = run_fidelity(b, cns, 200 if a.smoke else 2000, 0)
            rounds.append(r)
            log(f"round {i + 1}/{a.rounds}: ours {r['ours']['rate']}/s, flood "
                f"{r['flood']['rate']}/s (server {r['flood']['server_rate']:.0f}/s), "
                f"load {' '.join(r['load_avg'])}")
    finally:
        stop(srv)
        bench.cleanup()
    col = lambda c, k: [r[c][k] for r in rounds if c in r]  # noqa: E731
    ratios = [r["ours"]["rate"] / r["flood"]["rate"] for r in rounds
              if r["ours"]["rate"] and r["flood"]["rate"]]
    summary = {
        "ours_rate": med(col("ours", "rate")),
        "flood_rate": med(col("flood", "rate")),
        "flood_server_rate": med(col("flood", "server_rate")),
        "counting_rate": med(col("counting", "rate")),
        "counting_answered": med(col("counting", "answered")),
        "ratio_ours_to_flood": med(ratios),
        "ours_rss_peak_mb": med(col("ours", "rss_peak_mb")),
        "ours_cpu_s": med(col("ours", "cpu_s")),
        "ours_per_cpu_s": med(col("ours", "per_cpu_s")),
        "flood_per_cpu_s": med(col("flood", "per_cpu_s")),
        "ratio_per_cpu_ours_to_flood": med(
            [r["ours"]["per_cpu_s"] / r["flood"]["per_cpu_s"] for r in rounds
             if r["ours"]["per_cpu_s"] and r["flood"]["per_cpu_s"]]),
        "all_counted": all(r["ours"]["counted"] == a.n for r in rounds),
    }
    for name in ["ours"] + (["before"] if a.before else []):
        for kind in ("fid", "fid_b2b"):
            for k in ("median_abs", "p99_abs"):
                summary[f"{kind}_{name}_{k}"] = med(
                    [r[f"{kind}_{name}"].get(k) for r in rounds])
    if a.before:
        summary["before_rate"] = med(col("before", "rate"))
        summary["before_per_cpu_s"] = med(col("before", "per_cpu_s"))
        summary["ratio_per_cpu_ours_to_before"] = med(
            [r["ours"]["per_cpu_s"] / r["before"]["per_cpu_s"] for r in rounds
             if r["ours"]["per_cpu_s"] and r["before"]["per_cpu_s"]])
        summary["ratio_ours_to_before"] = med(
            [r["ours"]["rate"] / r["before"]["rate"] for r in rounds
             if r["ours"]["rate"] and r["before"]["rate"]])
    res = {"kind": "syn-rate", "n": a.n, "rounds": rounds, "summary": summary, "smoke": a.smoke,
           "binary": bench.BIN, "before": a.before,
           "generated": datetime.datetime.now(datetime.timezone.utc).strftime(
               "%Y-%m-%d %H:%M:%S UTC"),
           "command": "bench.sh syn-rate " + " ".join(sys.argv[1:])}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(render(res))
    log(f"results in {out_dir}")
    if not a.smoke and not os.environ.get("BENCH_OUT"):
        bench.write_index()
    print(render(res))


def render(res):
    s = res["summary"]
    fmt = lambda m, d=0: "–" if not m else (  # noqa: E731
        f"{m['median']:,.{d}f} ({m['min']:,.{d}f}–{m['max']:,.{d}f})")
    lines = [f"# SYN rate: --syn -i 0 -n {res['n']} -q next to hping3", "",
             "Medians over rounds (min–max).", "",
             "| figure | value |", "|---|---|",
             f"| ours: probes concluded/s | {fmt(s['ours_rate'])} |",
             f"| hping3 -S --flood: sent/s | {fmt(s['flood_rate'])} |",
             f"| SYNs reaching the server during the flood /s | {fmt(s['flood_server_rate'])} |",
             f"| hping3 -S -i u1 (counting): sent/s | {fmt(s['counting_rate'])} |",
             f"| hping3 -S -i u1: answers counted | {fmt(s['counting_answered'])} |",
             f"| ours / flood | {fmt(s['ratio_ours_to_flood'], 2)} |",
             f"| ours: probes per CPU second | {fmt(s['ours_per_cpu_s'])} |",
             f"| hping3 --flood: SYNs per CPU second | {fmt(s['flood_per_cpu_s'])} |",
             f"| ours / flood, per CPU second | {fmt(s['ratio_per_cpu_ours_to_flood'], 2)} |",
             f"| --syn -i 0.01: median / p99 abs(reported − wire) µs | "
             f"{fmt(s['fid_ours_median_abs'], 1)} / {fmt(s['fid_ours_p99_abs'], 1)} |",
             f"| --syn -i 0 (batched): median / p99 abs(reported − wire) µs | "
             f"{fmt(s['fid_b2b_ours_median_abs'], 1)} / {fmt(s['fid_b2b_ours_p99_abs'], 1)} |",
             f"| ours: peak RSS MB | {fmt(s['ours_rss_peak_mb'], 1)} |",
             f"| ours: CPU s | {fmt(s['ours_cpu_s'], 2)} |",
             f"| every verdict counted in every round | {s['all_counted']} |"]
    if "before_rate" in s:
        lines += [f"| before ({res['before']}): probes/s | {fmt(s['before_rate'])} |",
                  f"| before: probes per CPU second | {fmt(s['before_per_cpu_s'])} |",
                  f"| ours / before, per CPU second | "
                  f"{fmt(s['ratio_per_cpu_ours_to_before'], 2)} |",
                  f"| before, --syn -i 0.01: median / p99 abs(reported − wire) µs | "
                  f"{fmt(s['fid_before_median_abs'], 1)} / {fmt(s['fid_before_p99_abs'], 1)} |",
                  f"| before, --syn -i 0: median / p99 abs(reported − wire) µs | "
                  f"{fmt(s['fid_b2b_before_median_abs'], 1)} / "
                  f"{fmt(s['fid_b2b_before_p99_abs'], 1)} |",
                  f"| ours / before | {fmt(s['ratio_ours_to_before'], 2)} |"]
    lines += ["", "Per round (load average 1/5/15 min at its start; CPU busy per core):", ""]
    for i, r in enumerate(res["rounds"]):
        o, fl = r["ours"], r["flood"]
        lines.append(f"- round {i + 1} (load {' '.join(r['load_avg'])}; order "
                     f"{', '.join(r['order'])}): ours {o['rate'] or 0:,.0f}/s "
                     f"(counted {o['counted']}, timeouts {o['timeout']}, RSS peak "
                     f"{o['rss_peak_mb']} MB, {o['per_cpu_s'] or 0:,.0f} per CPU s, samples {min(o['rss_samples_mb'] or [0])}–"
                     f"{max(o['rss_samples_mb'] or [0])} MB, cpu {o['cpu_busy']}); flood "
                     f"{fl['rate'] or 0:,.0f}/s ({fl['per_cpu_s'] or 0:,.0f} per CPU s), server "
                     f"{fl['server_rate']:,.0f}/s "
                     f"(cpu {fl['cpu_busy']}); counting {r['counting']['rate'] or 0:,.0f}/s "
                     f"answered {r['counting']['answered']}"
                     + (f"; before {r['before']['rate'] or 0:,.0f}/s" if "before" in r else ""))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.cleanup()
