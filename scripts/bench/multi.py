#!/usr/bin/env python3
"""Many targets at once (scripts/bench.sh multi): tcpping-diag -f FILE with 10,000 loopback
targets at a 1 s interval, next to fping with the same targets, interleaved.

Measured per run (R repetitions; tcpping-diag with --metrics scraped, tcpping-diag without
--metrics, and fping, in turns):
  --syn probes, N targets (default 10,000: 127.1.x.y, one `tcpping-diag serve` on 0.0.0.0):
    - lag of each send behind its schedule: p50, p99, max (the run's own histogram, all
      sends), goal p99 <= 5 ms
    - CPU (user+system, /proc) over the steady part of the run, in cores, goal <= 1
    - peak RSS (VmHWM) and RSS at each 5 s of the run (flat: nothing grows per probe),
      goal <= 256 MB (<= 512 MB past 10,000 targets)
    - time to scrape /metrics (all N targets' series) every 5 s, goal <= 1 s (<= 2 s past
      10,000 targets), and its size; meanwhile two more clients hold a scrape open the
      whole run: one reads 4 KiB every 50 ms, one reads nothing
    - probes sent and answered (every probe gets a verdict)
    - CPU per probe
  the same without --metrics (what the metrics cost, in the same run)
  fping -l -p 1000 with the same N targets (ICMP echo, root): CPU per probe.
The load average is recorded at the start and the end (a busy machine shows in the tails).
  connect probes (the event-loop connect prober): the
    largest target count of a doubling series whose p99 lag stays <= 5 ms.

Results: bench/runs/<UTC date-time>-multi/results.{json,md} (BENCH_OUT=DIR overrides).
Traffic goes to loopback only.

  scripts/bench.sh multi [--smoke] [--targets N] [--seconds S] [--reps R] [--soak S]
                        [--connect-max N] [--histograms shared|per-target]
"""

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("TCPPING_BIN", os.path.join(REPO, "target/release/tcpping-diag"))
CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def targets_file(d, n, port):
    path = os.path.join(d, f"targets-{n}.txt")
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"127.1.{i // 250}.{1 + i % 250}:{port} n=t{i}\n")
    ips = os.path.join(d, f"ips-{n}.txt")
    with open(ips, "w") as f:
        for i in range(n):
            f.write(f"127.1.{i // 250}.{1 + i % 250}\n")
    return path, ips


def scrape(port):
    t0 = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        body = r.read()
    return time.monotonic() - t0, len(body)


class HeldScrape:
    """A client that holds one scrape open for the whole run: reads `step` bytes every
    `pause` s (0 bytes: reads nothing, with a small receive buffer)."""

    def __init__(self, port, step, pause=0.05):
        self.read = 0
        self.stop = threading.Event()
        self.s = socket.socket()
        if step == 0:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.s.connect(("127.0.0.1", port))
        self.s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        self.s.settimeout(1.0)
        self.t = threading.Thread(target=self.run, args=(step, pause), daemon=True)
        self.t.start()

    def run(self, step, pause):
        while not self.stop.wait(pause):
            if step == 0:
                continue
            try:
                b = self.s.recv(step)
            except OSError:
                continue
            if not b:
                return
            self.read += len(b)

    def close(self):
        self.stop.set()
        self.t.join()
        self.s.close()
        return self.read


def run_tcpping(tfile, n, seconds, extra, scrape_every=5.0, metrics=True, binary=None):
    mport = free_port()
    args = [binary or BIN, "-f", tfile, "-i", "1", "-W", "0.5", "--json", "-q"] + extra
    if metrics:
        args += ["--metrics", f"127.0.0.1:{mport}"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    # Steady state: after the first interval (all targets resolved and started).
    t_start = time.monotonic()
    time.sleep(min(2.0, seconds / 3))
    held = []
    if metrics:
        for step in (4096, 0):
            try:
                held.append(HeldScrape(mport, step))
            except OSError as e:
                print(f"held scrape failed: {e}", file=sys.stderr)
    c0, w0 = cpu_secs(p.pid), time.monotonic()
    rss, scrapes = [], []
    next_scrape = w0 + 1.0
    while time.monotonic() - t_start < seconds:
        time.sleep(0.5)
        if time.monotonic() >= next_scrape:
            if metrics:
                try:
                    scrapes.append(scrape(mport))
                except OSError as e:
                    scrapes.append((float("inf"), 0))
                    print(f"scrape failed: {e}", file=sys.stderr)
            rss.append(status_kb(p.pid, "VmRSS"))
            next_scrape += scrape_every
    c1, w1 = cpu_secs(p.pid), time.monotonic()
    hwm = status_kb(p.pid, "VmHWM")
    held_read = [h.close() for h in held]
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    err = err.decode(errors="replace")
    m = re.search(r"(\d+) probes to (\d+) targets in ([\d.]+) s; sent behind schedule by "
                  r"p50 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms", err)
    if not m:
        raise SystemExit(f"tcpping-diag printed no scheduler line:\n{err[-2000:]}")
    sums = [json.loads(l) for l in out.decode().splitlines() if '"type":"summary"' in l]
    sent = sum(s["sent"] for s in sums)
    answered = sum(s["received"] + s["refused"] for s in sums)
    interrupted = sum(s["interrupted"] for s in sums)
    cores = (c1 - c0) / (w1 - w0)
    return {
        "targets": len(sums),
        "probes": int(m.group(1)),
        "sent": sent,
        "answered": answered,
        "interrupted": interrupted,
        "timeouts": sum(s["timeout"] for s in sums),
        "lag_p50_ms": float(m.group(4)),
        "lag_p99_ms": float(m.group(5)),
        "lag_max_ms": float(m.group(6)),
        "cpu_cores": cores,
        "cpu_us_per_probe": cores * 1e6 / n,  # n probes per second at a 1 s interval
        "rss_hwm_mb": hwm / 1024,
        "rss_mb_each_5s": [r / 1024 for r in rss],
        "scrape_s": [s[0] for s in scrapes],
        "scrape_mb": max((s[1] for s in scrapes), default=0) / 1e6,
        "held_scrapes_read_bytes": held_read,
    }


def run_fping(ips, n, seconds):
    # -l: loop; every target every 1000 ms (-p); 1,000,000/n µs between two sends (-i,
    # ms): the same send rate as tcpping-diag's.
    gap_ms = max(1000.0 / n, 0.001)
    p = subprocess.Popen(["fping", "-l", "-p", "1000", "-i", f"{gap_ms:.3f}", "-q", "-t", "500",
                          "-f", ips], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    t_start = time.monotonic()
    time.sleep(min(2.0, seconds / 3))
    c0, w0 = cpu_secs(p.pid), time.monotonic()
    while time.monotonic() - t_start < seconds:
        time.sleep(0.5)
    c1, w1 = cpu_secs(p.pid), time.monotonic()
    hwm = status_kb(p.pid, "VmHWM")
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    xmt = rcv = 0
    for m in re.finditer(r"xmt/rcv/%loss = (\d+)/(\d+)", err.decode(errors="replace")):
        xmt += int(m.group(1))
        rcv += int(m.group(2))
    wall = time.monotonic() - t_start
    cores = (c1 - c0) / (w1 - w0)
    r = {"sent": xmt, "answered": rcv, "rate": xmt / wall, "cpu_cores": cores,
         "cpu_us_per_probe": cores * 1e6 / max(xmt / wall, 1), "rss_hwm_mb": hwm / 1024,
         "exit": p.returncode}
    if xmt == 0:
        # No counts read: keep what it said (the run is reported, not silently dropped).
        r["stderr_tail"] = err.decode(errors="replace")[-500:]
        print(f"fping counted nothing (exit {p.returncode}): {r['stderr_tail']}", file=sys.stderr)
    return r


def med(xs):
    return statistics.median(xs) if xs else None


def summarize(runs, key):
    xs = [r[key] for r in runs]
    return {"median": med(xs), "min": min(xs), "max": max(xs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="*")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--targets", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "3")))
    ap.add_argument("--connect-max", type=int, default=16000)
    ap.add_argument("--soak", type=float, default=150,
                    help="seconds of one longer --syn run, RSS every 5 s (0: none)")
    ap.add_argument("--histograms", default="shared", choices=["shared", "per-target"],
                    help="--metrics-histograms of the --syn runs")
    ap.add_argument("--baseline", metavar="BIN",
                    help="another build, run with --syn --metrics (its own series set) in turn "
                         "with the others, scraped the same way: before and after in one run")
    a = ap.parse_args()
    if a.smoke:
        a.targets, a.seconds, a.reps, a.connect_max, a.soak = 100, 4, 1, 200, 0
    if not shutil.which("fping"):
        print("multi: installing fping", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "fping"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    started = dt.datetime.now(dt.timezone.utc)
    load_start = os.getloadavg()
    out_dir = os.environ.get("BENCH_OUT") or os.path.join(
        REPO, "bench", "smoke" if a.smoke else "runs",
        ("multi" if a.smoke else started.strftime("%Y-%m-%dT%H%MZ") + "-multi"))
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="tpd-bench-multi-")
    srv_port = free_port()
    srv = subprocess.Popen([BIN, "serve", "--listen", f"0.0.0.0:{srv_port}", "--loss", "0", "-q",
                            "--max-clients", "20000"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        tfile, ips = targets_file(work, a.targets, srv_port)
        syn, bare, fping, base = [], [], [], []
        synargs = ["--syn", "--metrics-histograms", a.histograms]
        for rep in range(a.reps):
            print(f"multi: rep {rep + 1}/{a.reps}: tcpping-diag --syn --metrics, {a.targets} "
                  f"targets, {a.seconds:.0f} s", file=sys.stderr)
            syn.append(run_tcpping(tfile, a.targets, a.seconds, synargs))
            print(f"multi: rep {rep + 1}/{a.reps}: tcpping-diag --syn without --metrics",
                  file=sys.stderr)
            bare.append(run_tcpping(tfile, a.targets, a.seconds, ["--syn"], metrics=False))
            print(f"multi: rep {rep + 1}/{a.reps}: fping, {a.targets} targets", file=sys.stderr)
            fping.append(run_fping(ips, a.targets, a.seconds))
            if a.baseline:
                print(f"multi: rep {rep + 1}/{a.reps}: baseline {a.baseline} --syn --metrics",
                      file=sys.stderr)
                base.append(run_tcpping(tfile, a.targets, a.seconds, ["--syn"],
                                        binary=a.baseline))
        soak = None
        if a.soak > 0:
            print(f"multi: soak, tcpping-diag --syn, {a.targets} targets, {a.soak:.0f} s",
                  file=sys.stderr)
            soak = run_tcpping(tfile, a.targets, a.soak, synargs)
        # Connect probes: double the count while p99 lag holds.
        connect = []
        n = min(125, a.connect_max)
        while n <= a.connect_max:
            cfile, _ = targets_file(work, n, srv_port)
            print(f"multi: connect probes, {n} targets", file=sys.stderr)
            r = run_tcpping(cfile, n, max(a.seconds / 2, 3), [])
            connect.append(r)
            if r["lag_p99_ms"] > 5.0:
                break
            n *= 2
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(work, ignore_errors=True)
    held = [r["targets"] for r in connect if r["lag_p99_ms"] <= 5.0]
    load_end = os.getloadavg()
    res = {
        "started": started.isoformat(timespec="seconds"),
        "command": "scripts/bench.sh " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "targets": a.targets, "seconds": a.seconds, "reps": a.reps, "smoke": a.smoke,
        "histograms": a.histograms,
        "load_average": {"start": load_start, "end": load_end},
        "baseline": a.baseline,
        "syn_runs": syn, "bare_runs": bare, "baseline_runs": base, "fping_runs": fping,
        "connect_runs": connect,
        "soak": soak,
        "syn": {k: summarize(syn, k) for k in
                ["lag_p50_ms", "lag_p99_ms", "lag_max_ms", "cpu_cores", "cpu_us_per_probe",
                 "rss_hwm_mb", "scrape_mb"]},
        "bare": {k: summarize(bare, k) for k in
                 ["lag_p50_ms", "lag_p99_ms", "lag_max_ms", "cpu_cores", "cpu_us_per_probe",
                  "rss_hwm_mb"]},
        "syn_scrape_s": {"median": med([s for r in syn for s in r["scrape_s"]]),
                         "max": max(s for r in syn for s in r["scrape_s"])},
        "fping": {k: summarize(fping, k) for k in ["cpu_cores", "cpu_us_per_probe", "rss_hwm_mb"]},
        "base": {k: summarize(base, k) for k in
                 ["lag_p50_ms", "lag_p99_ms", "lag_max_ms", "cpu_cores", "cpu_us_per_probe",
                  "rss_hwm_mb", "scrape_mb"]} if base else None,
        "base_scrape_s": {"median": med([s for r in base for s in r["scrape_s"]]),
                          "max": max((s for r in base for s in r["scrape_s"]), default=0)}
        if base else None,
        "connect_largest_holding_5ms": max(held) if held else None,
    }
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    md = render(res)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md)
    print(md)
    print(f"multi: results in {out_dir}", file=sys.stderr)


def fmt(s, unit="", nd=2):
    return f"{s['median']:.{nd}f}{unit} ({s['min']:.{nd}f}–{s['max']:.{nd}f})"


def render(r):
    s, f, b = r["syn"], r["fping"], r["bare"]
    ok = lambda c: "met" if c else "**missed**"
    big = r["targets"] > 10000
    rss_goal, scrape_goal = (512, 2) if big else (256, 1)
    la = r["load_average"]
    lines = [
        f"# Many targets at once ({'smoke, not a measurement' if r['smoke'] else 'measured'})",
        "",
        f"{r['started']}, `{r['command']}`, {r['machine']['cpus']} CPUs, kernel {r['machine']['kernel']}.",
        f"{r['targets']} loopback targets (127.1.x.y, one `tcpping-diag serve` on 0.0.0.0), "
        f"1 s interval, -W 0.5, {r['seconds']:.0f} s per run, {r['reps']} runs of each, "
        "interleaved (with --metrics, without, fping); median (min–max) over the runs. "
        f"--metrics-histograms {r.get('histograms', 'shared')}; scraped every 5 s while two more "
        "clients hold a scrape open all the run (one reading 4 KiB every 50 ms, one reading "
        "nothing).",
        f"Load average at the start {la['start'][0]:.2f} {la['start'][1]:.2f} {la['start'][2]:.2f}, "
        f"at the end {la['end'][0]:.2f} {la['end'][1]:.2f} {la['end'][2]:.2f} (2 CPUs).",
        "",
        "| --syn probes | with --metrics, scraped | without --metrics | goal |",
        "|---|---|---|---|",
        f"| send lag p50 | {fmt(s['lag_p50_ms'], ' ms', 3)} | {fmt(b['lag_p50_ms'], ' ms', 3)} | |",
        f"| send lag p99 | {fmt(s['lag_p99_ms'], ' ms', 3)} | {fmt(b['lag_p99_ms'], ' ms', 3)} | ≤ 5 ms: {ok(s['lag_p99_ms']['max'] <= 5)} |",
        f"| send lag max | {fmt(s['lag_max_ms'], ' ms', 3)} | {fmt(b['lag_max_ms'], ' ms', 3)} | |",
        f"| CPU | {fmt(s['cpu_cores'], ' cores')} | {fmt(b['cpu_cores'], ' cores')} | ≤ 1 core: {ok(s['cpu_cores']['max'] <= 1)} |",
        f"| peak RSS | {fmt(s['rss_hwm_mb'], ' MB', 1)} | {fmt(b['rss_hwm_mb'], ' MB', 1)} | ≤ {rss_goal} MB: {ok(s['rss_hwm_mb']['max'] <= rss_goal)} |",
        f"| scrape of /metrics | median {r['syn_scrape_s']['median']:.3f} s, max {r['syn_scrape_s']['max']:.3f} s, {s['scrape_mb']['median']:.1f} MB | | ≤ {scrape_goal} s: {ok(r['syn_scrape_s']['max'] <= scrape_goal)} |",
        f"| CPU per probe | {fmt(s['cpu_us_per_probe'], ' µs', 1)} | {fmt(b['cpu_us_per_probe'], ' µs', 1)} | |",
        f"| fping, same targets (ICMP echo): CPU per probe | {fmt(f['cpu_us_per_probe'], ' µs', 1)}, {fmt(f['cpu_cores'], ' cores')} | | |",
    ]
    bs = r.get("base")
    if bs:
        bsc = r["base_scrape_s"]
        lines += [
            "",
            f"Before and after, in the same run: the baseline build `{r['baseline']}` with "
            "`--syn --metrics` (its own series set), scraped the same way:",
            "",
            "| --syn --metrics, scraped | this build | baseline |",
            "|---|---|---|",
            f"| send lag p50 | {fmt(s['lag_p50_ms'], ' ms', 3)} | {fmt(bs['lag_p50_ms'], ' ms', 3)} |",
            f"| send lag p99 | {fmt(s['lag_p99_ms'], ' ms', 3)} | {fmt(bs['lag_p99_ms'], ' ms', 3)} |",
            f"| send lag max | {fmt(s['lag_max_ms'], ' ms', 3)} | {fmt(bs['lag_max_ms'], ' ms', 3)} |",
            f"| CPU | {fmt(s['cpu_cores'], ' cores')} | {fmt(bs['cpu_cores'], ' cores')} |",
            f"| peak RSS | {fmt(s['rss_hwm_mb'], ' MB', 1)} | {fmt(bs['rss_hwm_mb'], ' MB', 1)} |",
            f"| scrape | median {r['syn_scrape_s']['median']:.3f} s, max {r['syn_scrape_s']['max']:.3f} s, "
            f"{s['scrape_mb']['median']:.1f} MB | median {bsc['median']:.3f} s, max {bsc['max']:.3f} s, "
            f"{bs['scrape_mb']['median']:.1f} MB |",
        ]
    lines += [
        "",
        "Every run: probes sent / answered (SYN-ACK) / timeouts, and RSS every 5 s:",
        "",
    ]
    for i, x in enumerate(r["syn_runs"]):
        lines.append(f"- tcpping-diag --metrics run {i + 1}: {x['sent']} / {x['answered']} / "
                     f"{x['timeouts']}, RSS " + ", ".join(f"{v:.0f}" for v in x["rss_mb_each_5s"])
                     + " MB; scrapes " + ", ".join(f"{v:.2f}" for v in x["scrape_s"]) + " s; "
                     "held scrapes read " + ", ".join(f"{v / 1e6:.1f}" for v in
                                                      x.get("held_scrapes_read_bytes", [])) + " MB")
    for i, x in enumerate(r.get("baseline_runs", [])):
        lines.append(f"- baseline run {i + 1}: {x['sent']} / {x['answered']} / {x['timeouts']}, RSS "
                     + ", ".join(f"{v:.0f}" for v in x["rss_mb_each_5s"]) + " MB; scrapes "
                     + ", ".join(f"{v:.2f}" for v in x["scrape_s"]) + " s")
    for i, x in enumerate(r.get("bare_runs", [])):
        lines.append(f"- tcpping-diag without --metrics run {i + 1}: {x['sent']} / {x['answered']} / "
                     f"{x['timeouts']}, RSS " + ", ".join(f"{v:.0f}" for v in x["rss_mb_each_5s"]) + " MB")
    for i, x in enumerate(r["fping_runs"]):
        lines.append(f"- fping run {i + 1}: {x['sent']} sent, {x['answered']} answered, "
                     f"{x['rate']:.0f}/s")
    k = r.get("soak")
    if k:
        rss = k["rss_mb_each_5s"]
        lines += ["", f"Soak: one --syn run of {r['targets']} targets for {k['rss_mb_each_5s'] and len(rss) * 5} s: "
                  f"{k['sent']} probes, {k['answered']} answered, lag p99 {k['lag_p99_ms']:.3f} ms, "
                  f"CPU {k['cpu_cores']:.2f} cores, peak RSS {k['rss_hwm_mb']:.1f} MB; RSS every 5 s (MB): "
                  + ", ".join(f"{v:.0f}" for v in rss)]
    lines += ["", "| connect probes (event loop): targets | send lag p99 | CPU | peak RSS |",
              "|---|---|---|---|"]
    for x in r["connect_runs"]:
        lines.append(f"| {x['targets']} | {x['lag_p99_ms']:.3f} ms | {x['cpu_cores']:.2f} cores | "
                     f"{x['rss_hwm_mb']:.1f} MB |")
    lines += ["", f"Largest connect target count holding p99 lag ≤ 5 ms: "
              f"{r['connect_largest_holding_5ms']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
