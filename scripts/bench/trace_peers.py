#!/usr/bin/env python3
"""Run `tcpping-diag trace` and the TCP traceroute peers in the trace lab; judge each answer.

Called by scripts/bench/trace.sh (which builds the lab and removes it):

    trace_peers.py [--smoke]

Environment: TCPPING_BIN (the binary), TRACE_NS_PREFIX (the lab's namespaces, <prefix>-cli is
the client), BENCH_REPS (repetitions, default 5; --smoke: 1), BENCH_OUT (the results folder;
default bench/runs/<UTC date and time>-trace; --smoke: bench/smoke/trace).

For every topology every tool runs BENCH_REPS times, interleaved (each repetition runs every
tool once, in turn). Per tool and topology the table gives what its output shows (judged
against what the lab is known to do), whether that is right in every repetition, and the
median and the longest wall time until it exits with its complete answer. dublin-traceroute
probes with UDP only, so it runs once per topology where UDP can show anything (the long
path and the diamond); it needs a default route, set in the client's namespace before it runs.

Then the load-balanced topologies (3-way split, two diamonds, nested split, a branch that drops
a port): per tool the routers and links found against the truth, false links, probes sent and
wall time: ours with --flows 16 and --multipath, scamper tracelb, dublin-traceroute,
traceroute -T and mtr --tcp (BENCH_TRACE_ONLY=multipath: these alone).
"""
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("TCPPING_BIN", os.path.join(REPO, "target/release/tcpping-diag"))
PREFIX = os.environ["TRACE_NS_PREFIX"]
SMOKE = "--smoke" in sys.argv[1:]
REPS = 1 if SMOKE else int(os.environ.get("BENCH_REPS", "5"))
STAMP = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%MZ")
OUT = os.environ.get("BENCH_OUT") or os.path.join(
    REPO, "bench", os.path.join("smoke", "trace") if SMOKE else os.path.join("runs", f"{STAMP}-trace"))

R1, R2, R3, SRV = "10.78.1.1", "10.78.2.2", "10.78.3.2", "10.78.4.2"
E1, EA, EB, E2A, E2B, DSRV = "10.78.11.1", "10.78.12.2", "10.78.13.2", "10.78.15.2", "10.78.16.2", "10.78.14.2"
WAIT, MAXHOPS = "1", "10"

# topology: (name, what the lab does, target, port, first hop for the default route)
TOPOLOGIES = [
    ("reached", "long path, port open: r1, r2, r3, then the server at hop 4", SRV, 12001, R1),
    ("reject-at-hop-2", "r2 REJECTs the port (icmp-admin-prohibited, after its TTL check)", SRV, 12007, R1),
    ("silent-after-hop-2", "r2 DROPs the port: r2 is the last hop that answers", SRV, 12011, R1),
    ("ecmp-diamond", "e1 balances by ports over ea/eb; e2 answers from the branch's link", DSRV, 12001, E1),
    ("mpls", "r2 and r3 answer time exceeded with MPLS labels (forged, RFC 4884 and legacy)", SRV, 12003, R1),
]
if SMOKE:
    TOPOLOGIES = [t for t in TOPOLOGIES if t[0] in ("reject-at-hop-2", "ecmp-diamond")]
# BENCH_TRACE_ONLY=multipath: the load-balanced topologies alone
if os.environ.get("BENCH_TRACE_ONLY") == "multipath":
    TOPOLOGIES = []

# tool: (name, argv builder, runs where, repetitions)
def t_ours(t, p):
    return [BIN, "trace", f"{t}:{p}", "--json", "-W", WAIT, "-m", MAXHOPS]


def t_ours_flows(t, p):
    return [BIN, "trace", f"{t}:{p}", "--json", "-W", WAIT, "-m", MAXHOPS, "--flows", "16", "-q", "1"]


def t_traceroute(t, p):
    return ["traceroute", "-T", "-e", "-p", str(p), "-n", "-w", WAIT, "-q", "3", "-m", MAXHOPS, t]


def t_tcptraceroute(t, p):
    return ["tcptraceroute", "-n", "-w", WAIT, "-q", "3", "-m", MAXHOPS, t, str(p)]


def t_mtr(t, p):
    return ["mtr", "-e", "-n", "-T", "-P", str(p), "-r", "-c", "3", "-i", "0.1", "-G", WAIT, "-m", MAXHOPS, t]


def t_scamper(t, p):
    return ["scamper", "-O", "text", "-c", f"trace -P tcp -d {p} -q 3 -w {WAIT} -m {MAXHOPS}", "-i", t]


def t_dublin(t, p):
    return ["dublin-traceroute", "-n", "8", "-T", MAXHOPS, t]


TOOLS = [
    ("tcpping-diag trace", t_ours, None),
    ("tcpping-diag trace --flows 16", t_ours_flows, {"ecmp-diamond"}),
    ("traceroute -T", t_traceroute, None),
    ("tcptraceroute", t_tcptraceroute, None),
    ("mtr --tcp", t_mtr, None),
    ("scamper (tcp)", t_scamper, None),
    ("dublin-traceroute (UDP)", t_dublin, {"reached", "ecmp-diamond"}),
]
if SMOKE:
    TOOLS = [t for t in TOOLS if not t[0].startswith("dublin")]
ONCE = {"dublin-traceroute (UDP)"}

IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def log(msg):
    print(f"[bench trace {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Ran:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def in_client(argv, cwd=None):
    """Run argv in the client's namespace. Returns (result, seconds until the last output
    byte: the complete answer, seconds until the process exited)."""
    import threading
    t0 = time.monotonic()
    p = subprocess.Popen(["ip", "netns", "exec", f"{PREFIX}-cli", "timeout", "600"] + argv,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                         stdin=subprocess.DEVNULL)
    out, err, last = [], [], [t0]

    def pump(f, sink, stamp):
        while True:
            b = os.read(f.fileno(), 65536)
            if not b:
                return
            sink.append(b)
            if stamp:
                last[0] = time.monotonic()

    threads = [threading.Thread(target=pump, args=(p.stdout, out, True)),
               threading.Thread(target=pump, args=(p.stderr, err, False))]
    for t in threads:
        t.start()
    rc = p.wait()
    t_exit = time.monotonic() - t0
    for t in threads:
        t.join()
    return (Ran(rc, b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace")),
            last[0] - t0, t_exit)


# ------------------------------------------------------------------ parsing: hop -> [(addr, mark)]

def parse_lines(text):
    """traceroute, tcptraceroute and scamper's text: ' N  addr [mark] t ms ...'."""
    hops = {}
    for line in text.splitlines():
        m = re.match(r"^\s*(\d+)\s+(.*)$", line)
        if not m:
            continue
        n, rest = int(m.group(1)), m.group(2)
        seen = []
        addr = None
        for tok in rest.split():
            if IP.match(tok):
                addr = tok
                seen.append([addr, None])
            elif tok in ("[open]", "[closed]") and seen:
                seen[-1][1] = tok.strip("[]")
            elif tok.startswith("!") and seen:
                seen[-1][1] = tok
            elif tok.startswith("<MPLS") and seen:
                seen[-1].append(tok)
        hops[n] = seen
    return hops


def parse_mtr(text):
    hops, last = {}, None
    for line in text.splitlines():
        m = re.match(r"^\s*(\d+)\.\|--\s+(\S+)", line)
        if m:
            last = int(m.group(1))
            hops[last] = [] if m.group(2) == "???" else [[m.group(2), None]]
            continue
        m = re.match(r"^\s+(\d+\.\d+\.\d+\.\d+)\s*$", line)
        if m and last is not None:
            hops[last].append([m.group(1), None])
    return hops


def parse_ours(text):
    hops, mpls, verdict = {}, {}, None
    for line in text.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("type") == "probe" and e.get("from"):
            mark = e.get("port")
            if e["status"] == "unreachable":
                mark = f"ICMP {e['icmp']['type']}/{e['icmp']['code']}"
            hops.setdefault(e["hop"], [])
            if [e["from"], mark] not in hops[e["hop"]]:
                hops[e["hop"]].append([e["from"], mark])
            if e.get("mpls"):
                mpls[e["hop"]] = e["mpls"]
        elif e.get("type") == "probe":
            hops.setdefault(e["hop"], [])
        elif e.get("type") == "trace":
            verdict = e["text"]
    return hops, mpls, verdict


def parse_dublin(path):
    hops = {}
    with open(path) as f:
        d = json.load(f)
    for flow in d.get("flows", {}).values():
        for h in flow:
            rec = h.get("received") or {}
            src = (rec.get("ip") or {}).get("src")
            ttl = h["sent"]["ip"]["ttl"]
            hops.setdefault(ttl, [])
            if src and [src, None] not in hops[ttl]:
                hops[ttl].append([src, None])
    return hops


# ------------------------------------------------------------------ judging

def addrs(hops, n):
    return sorted({a[0] for a in hops.get(n, [])})


def last_answering(hops):
    ans = [n for n, v in hops.items() if v]
    return max(ans) if ans else None


def shown(hops):
    """The path as the tool showed it, compactly: '1 r1, 2 r2, 3 r2 !X'."""
    parts = []
    for n in sorted(hops):
        v = hops[n]
        if not v:
            continue
        uniq = []
        for a, m, *_ in v:
            x = a + (f" {m}" if m else "")
            if x not in uniq:
                uniq.append(x)
        parts.append(f"{n} " + "|".join(uniq))
    return ", ".join(parts)


def judge(topo, tool, hops, mpls, verdict):
    """(right, what it shows)"""
    flap = [n for n in sorted(hops) if len(addrs(hops, n)) > 1]
    if topo == "reached":
        ok = (addrs(hops, 1), addrs(hops, 2), addrs(hops, 3), addrs(hops, 4)) == ([R1], [R2], [R3], [SRV]) \
            and last_answering(hops) == 4
        return ok, ("reached in 4 hops, every router right" if ok else f"wrong: {shown(hops)}")
    if topo == "reject-at-hop-2":
        refusal = [(n, a, m) for n in sorted(hops) for a, m, *_ in hops[n]
                   if m and (m.startswith("!") or m.startswith("ICMP"))]
        if refusal:
            n, a, m = refusal[0]
            ok = a == R2 and R2 in addrs(hops, 2)
            says = f"r2 ({a}) refuses: {m} at hop {n}" if a == R2 else f"refusal from {a} at hop {n}"
            return ok, says + ("" if ok else f"; shows {shown(hops)}")
        last = last_answering(hops)
        if last and addrs(hops, last) == [R2]:
            return False, f"shows r2 at hops {', '.join(str(n) for n in sorted(hops) if addrs(hops, n) == [R2])}, not that it refuses"
        return False, f"no refusal shown: {shown(hops)}"
    if topo == "silent-after-hop-2":
        last = last_answering(hops)
        ok = last == 2 and addrs(hops, 2) == [R2] and addrs(hops, 1) == [R1]
        return ok, (f"last answer: hop 2 (r2), then silence" if ok else f"last answer: hop {last} {addrs(hops, last) if last else ''}")
    if topo == "ecmp-diamond":
        both = addrs(hops, 2) == [EA, EB] and addrs(hops, 3) == [E2A, E2B]
        multipath = tool.endswith("--flows 16") or tool.startswith("dublin")
        if multipath:
            return both, ("both branches found (hops 2, 3)" if both else f"branches missed: {shown(hops)}")
        if flap:
            return False, f"false flapping at hop{'s' if len(flap) > 1 else ''} {', '.join(map(str, flap))}: {shown(hops)}"
        one = (addrs(hops, 2), addrs(hops, 3)) in (([EA], [E2A]), ([EB], [E2B]))
        return one, ("one consistent path" if one else f"inconsistent: {shown(hops)}")
    if topo == "mpls":
        if tool.startswith("tcpping-diag"):
            ok = [m["label"] for m in mpls.get(2, [])] == [24001, 16] and [m["label"] for m in mpls.get(3, [])] == [24002]
        else:
            ext = {n: " ".join(x for a in hops.get(n, []) for x in a[2:]) for n in hops}
            ok = "L=24001" in ext.get(2, "") and "L=16" in ext.get(2, "") and "L=24002" in ext.get(3, "")
        route_ok = addrs(hops, 2) == [R2] and addrs(hops, 3) == [R3]
        return ok and route_ok, ("labels 24001/16 at hop 2, 24002 at hop 3" if ok else "no MPLS labels shown") + \
            ("" if route_ok else f"; route wrong: {shown(hops)}")
    return False, "?"


# ------------------------------------------------------------------ multipath topologies

def _truth(hops, links):
    return {"hops": {int(k): sorted(v) for k, v in hops.items()}, "links": sorted(links)}


S3 = _truth({1: ["10.78.20.1"], 2: ["10.78.21.2", "10.78.22.2", "10.78.24.2"], 3: ["10.78.25.2", "10.78.27.2"],
             4: ["10.78.26.2", "10.78.28.2"], 5: ["10.78.28.2"]},
            ["10.78.20.1>10.78.21.2", "10.78.20.1>10.78.22.2", "10.78.20.1>10.78.24.2", "10.78.21.2>10.78.25.2",
             "10.78.24.2>10.78.27.2", "10.78.25.2>10.78.28.2", "10.78.26.2>10.78.28.2", "10.78.27.2>10.78.28.2"])
DD = _truth({1: ["10.78.30.1"], 2: ["10.78.31.2", "10.78.32.2"], 3: ["10.78.33.2"], 4: ["10.78.35.2", "10.78.36.2"],
             5: ["10.78.37.2"], 6: ["10.78.39.2"]},
            ["10.78.30.1>10.78.31.2", "10.78.30.1>10.78.32.2", "10.78.31.2>10.78.33.2", "10.78.32.2>10.78.33.2",
             "10.78.33.2>10.78.35.2", "10.78.33.2>10.78.36.2", "10.78.35.2>10.78.37.2", "10.78.36.2>10.78.37.2",
             "10.78.37.2>10.78.39.2"])
NS = _truth({1: ["10.78.40.1"], 2: ["10.78.41.2", "10.78.42.2", "10.78.43.2"],
             3: ["10.78.44.2", "10.78.45.2", "10.78.46.2", "10.78.47.2"], 4: ["10.78.48.2"], 5: ["10.78.53.2"]},
            ["10.78.40.1>10.78.41.2", "10.78.40.1>10.78.42.2", "10.78.40.1>10.78.43.2", "10.78.41.2>10.78.44.2",
             "10.78.41.2>10.78.45.2", "10.78.42.2>10.78.46.2", "10.78.43.2>10.78.47.2", "10.78.44.2>10.78.48.2",
             "10.78.45.2>10.78.48.2", "10.78.46.2>10.78.48.2", "10.78.47.2>10.78.48.2", "10.78.48.2>10.78.53.2"])
# TCP to 12011: the flows through eb stop there (silent after hop 2)
DROP = _truth({1: [E1], 2: [EA, EB], 3: [E2A], 4: [DSRV]},
              [f"{E1}>{EA}", f"{E1}>{EB}", f"{EA}>{E2A}", f"{E2A}>{DSRV}"])
# links that exist but TCP to 12011 does not take (UDP does): not false
DROP["other_links"] = [f"{EB}>{E2B}", f"{E2B}>{DSRV}"]

# (name, what, target, port, first hop for the default route, truth)
MP_TOPOLOGIES = [
    ("split3", "s1 balances 3 ways; branches of 3, 4 and 3 hops; sb2 (hop 3) silent", "10.78.28.2", 12001,
     "10.78.20.1", S3),
    ("two-diamonds", "d1 and d2 balance 2 ways each; d2 answers from its address on da's link", "10.78.39.2", 12001,
     "10.78.30.1", DD),
    ("nested", "n1 balances 3 ways, na 2 ways again: 4 routers at hop 3 (1/6, 1/6, 1/3, 1/3 of flows)",
     "10.78.53.2", 12001, "10.78.40.1", NS),
    ("drop-branch", "the diamond; eb drops TCP to 12011: partial", DSRV, 12011, E1, DROP),
]
if SMOKE:
    MP_TOPOLOGIES = [t for t in MP_TOPOLOGIES if t[0] in ("two-diamonds", "drop-branch")]


def flows_needed(k, alpha):
    """The MDA stopping point, as src/trace/mda.rs computes it: the fewest flows through a
    router with k next hops seen that rule out a (k+1)-th, equally likely, at failure
    probability alpha (inclusion-exclusion over the k+1 next hops missed)."""
    m = k + 1
    for n in range(1, 10000):
        miss, c = 0.0, 1.0
        for i in range(1, m + 1):
            c = c * (m - i + 1) / i
            miss += (1 if i % 2 else -1) * c * (1 - i / m) ** n
        if miss <= alpha:
            return n
    return 10000


def floor(truth, alpha, per_trace):
    """The fewest probes any search must have answered (or silent, past a silent router) to
    claim the whole topology under the per-router rule: each router with d next hops needs
    n_d of its own flows probed one hop on, and each such probe crosses that router alone
    (the source: the routers of hop 1; a router whose next hop is silent or dropped: one).
    per_trace: the bound per router is alpha over the routers that branch plus one (ours, for
    the whole trace); otherwise alpha per router (scamper tracelb's rule)."""
    hops = truth["hops"]
    last = max(hops)
    target = hops[last][0]
    out = {}
    for link in truth["links"]:
        a, b = link.split(">")
        out.setdefault(a, set()).add(b)
    routers = {a for h, v in hops.items() for a in v if a != target}
    degrees = [len(hops[1])] + [max(1, len(out.get(r, ()))) for r in sorted(routers)]
    if per_trace:
        alpha = alpha / (sum(d >= 2 for d in degrees) + 1)
    return sum(flows_needed(d, alpha) for d in degrees)


def has_multipath():
    r = subprocess.run([BIN, "trace", "--help"], capture_output=True, text=True)
    return "--multipath" in r.stdout


def mp_ours(flows):
    def build(t, p):
        extra = ["--multipath"] if flows is None else ["--flows", str(flows), "-q", "1"]
        return [BIN, "trace", f"{t}:{p}", "--json", "-W", WAIT, "-m", MAXHOPS] + extra
    return build


def mp_tracelb(t, p):
    return ["scamper", "-O", "text", "-c", f"tracelb -P tcp-sport -d {p} -q 3 -w {WAIT}", "-i", t]


def mp_dublin(t, p):
    return ["dublin-traceroute", "-n", "16", "-T", MAXHOPS, t]


def nobody_bin():
    """The binary copied where nobody may run it (once)."""
    d = tempfile.mkdtemp(prefix="tcpping-bench-nobody-")
    os.chmod(d, 0o755)
    b = os.path.join(d, "tcpping-diag")
    subprocess.run(["install", "-m", "755", BIN, b], check=True)
    return b


NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
          "--bounding-set=-all"]
NOBODY_BIN = None


def mp_ours_nobody(t, p):
    global NOBODY_BIN
    NOBODY_BIN = NOBODY_BIN or nobody_bin()
    return NOBODY + [NOBODY_BIN] + mp_ours(16)(t, p)[1:]


MP_TOOLS = [("tcpping-diag trace --flows 16", mp_ours(16)),
            ("tcpping-diag trace --flows 16, as nobody", mp_ours_nobody)]
if has_multipath():
    MP_TOOLS.append(("tcpping-diag trace --multipath", mp_ours(None)))
MP_TOOLS += [
    ("scamper tracelb (tcp-sport)", mp_tracelb),
    ("dublin-traceroute -n 16 (UDP)", mp_dublin),
    ("traceroute -T", t_traceroute),
    ("mtr --tcp", t_mtr),
]
if SMOKE:
    MP_TOOLS = [t for t in MP_TOOLS if not t[0].startswith("dublin")]


def graph_ours(text):
    """Routers per hop, links (two routers at consecutive hops on one flow), probes, verdict."""
    hops, per_hop, summary = {}, {}, {}
    for line in text.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("type") == "hop":
            per_hop[e["hop"]] = e
            hops[e["hop"]] = sorted(r for r in e["routers"] if r)
        elif e.get("type") == "trace":
            summary = e
    links = set()
    for h, e in per_hop.items():
        nxt = per_hop.get(h + 1)
        if not nxt:
            continue
        for a in e.get("router_details", []):
            for b in nxt.get("router_details", []):
                if a.get("address") and b.get("address") and set(a.get("flows", [])) & set(b.get("flows", [])):
                    links.add(f"{a['address']}>{b['address']}")
    return hops, sorted(links), summary.get("probes_sent"), summary


def graph_tracelb(text):
    """scamper's text: 'a -> b' links, and 'a -> (x, y) -> (z, *) -> b' for stretches whose links
    it did not resolve (their routers count as found, their links as not drawn)."""
    routers, links, probes = set(), set(), None
    for line in text.splitlines():
        m = re.match(r"^tracelb from \S+ to \S+, \d+ nodes, \d+ links, (\d+) probes", line)
        if m:
            probes = int(m.group(1))
            continue
        if "->" not in line:
            continue
        parts = [x.strip() for x in line.split("->")]
        groups = [[a.strip() for a in x.strip("()").split(",")] for x in parts]
        for g in groups:
            routers.update(a for a in g if IP.match(a))
        for g1, g2 in zip(groups, groups[1:]):
            if len(g1) == 1 and len(g2) == 1 and IP.match(g1[0]) and IP.match(g2[0]):
                links.add(f"{g1[0]}>{g2[0]}")
    return routers, sorted(links), probes


def graph_dublin(path):
    hops, links, probes = {}, set(), 0
    with open(path) as f:
        d = json.load(f)
    for flow in d.get("flows", {}).values():
        prev = None
        for h in sorted(flow, key=lambda h: h["sent"]["ip"]["ttl"]):
            probes += 1
            src = ((h.get("received") or {}).get("ip") or {}).get("src")
            ttl = h["sent"]["ip"]["ttl"]
            if src:
                hops.setdefault(ttl, set()).add(src)
                if prev and prev[0] == ttl - 1:
                    links.add(f"{prev[1]}>{src}")
                prev = (ttl, src)
            else:
                prev = None
    return {k: sorted(v) for k, v in hops.items()}, sorted(links), probes


def graph_single(hops):
    """A single-path tool's drawing: every address of a hop linked to every one of the next."""
    h = {n: sorted({a[0] for a in v}) for n, v in hops.items() if v}
    links = set()
    for n, v in h.items():
        for a in v:
            for b in h.get(n + 1, []):
                if a != b:
                    links.add(f"{a}>{b}")
    return h, sorted(links)


def mp_judge(truth, routers, links):
    true_routers = {a for v in truth["hops"].values() for a in v}
    true_links = set(truth["links"])
    real = true_links | set(truth.get("other_links", []))
    return {"routers_found": len(routers & true_routers), "routers_true": len(true_routers),
            "routers_false": sorted(routers - true_routers),
            "links_found": len(set(links) & true_links), "links_true": len(true_links),
            "links_false": sorted(set(links) - real),
            "links_missed": sorted(true_links - set(links))}


def run_multipath(raw):
    rows = {}
    for topo, what, target, port, gw, truth in MP_TOPOLOGIES:
        subprocess.run(["ip", "netns", "exec", f"{PREFIX}-cli", "ip", "route", "replace", "default",
                        "via", gw], check=True)
        for rep in range(REPS):
            for name, build in MP_TOOLS:
                argv = build(target, port)
                probes, verdict, exit_code = None, None, None
                with tempfile.TemporaryDirectory() as cwd:
                    r, secs, exit_secs = in_client(argv, cwd=cwd)
                    if name.startswith("dublin"):
                        p = os.path.join(cwd, "trace.json")
                        hops, links, probes = graph_dublin(p) if os.path.exists(p) else ({}, [], None)
                        routers = {a for v in hops.values() for a in v}
                if name.startswith("tcpping-diag"):
                    hops, links, probes, summary = graph_ours(r.stdout)
                    routers = {a for v in hops.values() for a in v}
                    verdict = summary.get("verdict")
                elif name.startswith("scamper"):
                    routers, links, probes = graph_tracelb(r.stdout)
                elif not name.startswith("dublin"):
                    hops, links = graph_single(parse_mtr(r.stdout) if name.startswith("mtr") else parse_lines(r.stdout))
                    routers = {a for v in hops.values() for a in v}
                exit_code = r.returncode
                j = mp_judge(truth, routers, links)
                safe = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
                with open(os.path.join(raw, f"mp-{topo}.{safe}.{rep}.txt") if rep == 0 else os.devnull, "w") as f:
                    f.write(f"$ {shlex.join(argv)}\n# exit {r.returncode}; answer complete after {secs:.4f} s, "
                            f"exited after {exit_secs:.4f} s\n{r.stdout}\n# stderr\n{r.stderr}")
                row = rows.setdefault((topo, name), {"tool": name, "topology": topo, "command": shlex.join(argv),
                                                     "runs": []})
                row["runs"].append({**j, "probes": probes, "secs": round(secs, 4), "exit": exit_code,
                                    "verdict": verdict})
                log(f"mp {topo:14} {name:34} routers {j['routers_found']}/{j['routers_true']} "
                    f"links {j['links_found']}/{j['links_true']} false {len(j['links_false'])} "
                    f"probes {probes} {secs:7.3f} s exit {exit_code} {verdict or ''}")
    out = []
    for row in rows.values():
        runs = row["runs"]
        med = lambda k: statistics.median([x[k] for x in runs]) if all(x[k] is not None for x in runs) else None
        row.update({
            "all_routers_runs": sum(x["routers_found"] == x["routers_true"] and not x["routers_false"] for x in runs),
            "all_links_runs": sum(x["links_found"] == x["links_true"] for x in runs),
            "false_link_runs": sum(bool(x["links_false"]) for x in runs),
            "routers_found_min": min(x["routers_found"] for x in runs),
            "links_found_min": min(x["links_found"] for x in runs),
            "routers_true": runs[0]["routers_true"], "links_true": runs[0]["links_true"],
            "probes_median": med("probes"), "median_s": round(statistics.median([x["secs"] for x in runs]), 4),
            "max_s": round(max(x["secs"] for x in runs), 4),
            "verdicts": sorted({str(x["verdict"]) for x in runs if x["verdict"]}),
            "exits": sorted({x["exit"] for x in runs}),
        })
        out.append(row)
    return out


def markdown_multipath(meta, rows):
    lines = ["# Load-balanced paths", "",
             f"{meta['reps']} interleaved runs per tool and topology. Routers: the true routers found in every "
             "run (the fewest found in a run / all); links: likewise, a link being two routers at consecutive hops "
             "on one flow (for traceroute and mtr, which keep no flow, every address of a hop joined to every one "
             "of the next, as their output is read); false: runs that drew a link that does not exist; probes: "
             "median probes sent (tracelb: its count; dublin-traceroute: its probes; ours: `probes_sent`); time: "
             "median and longest wall time. scamper tracelb prints a stretch whose links it did not resolve as "
             "`a -> (x, y) -> b`: its routers count, its links do not. dublin-traceroute probes UDP (it cannot see "
             "a TCP port dropped).", ""]
    for topo in meta["mp_topologies"]:
        lines += [f"## {topo['name']}: {topo['what']} ({topo['target']})", "",
                  "| tool | routers | links | false links | probes | time, median | time, max | verdict (exit) |",
                  "|---|---|---|---|---|---|---|---|"]
        lines.insert(len(lines) - 2,
                     f"Floor (computed from the true topology): any search that claims it all must have "
                     f"{topo['floor_per_router_95']} probes answered at 95 % per router (tracelb's rule), "
                     f"{topo['floor_per_trace_95']} at 95 % for the whole trace (ours).\n")
        for r in rows:
            if r["topology"] != topo["name"]:
                continue
            n = len(r["runs"])
            pr = "—" if r["probes_median"] is None else f"{r['probes_median']:g}"
            v = ", ".join(r["verdicts"]) or "—"
            lines.append(f"| {r['tool']} | {r['routers_found_min']}/{r['routers_true']} ({r['all_routers_runs']}/{n} all) "
                         f"| {r['links_found_min']}/{r['links_true']} ({r['all_links_runs']}/{n} all) "
                         f"| {r['false_link_runs']}/{n} | {pr} | {fmt_s(r['median_s'])} | {fmt_s(r['max_s'])} "
                         f"| {v} ({', '.join(map(str, r['exits']))}) |")
        lines.append("")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ main

def main():
    os.makedirs(OUT, exist_ok=True)
    raw = os.path.join(OUT, "raw")
    os.makedirs(raw, exist_ok=True)
    results = []
    for topo, what, target, port, gw in TOPOLOGIES:
        subprocess.run(["ip", "netns", "exec", f"{PREFIX}-cli", "ip", "route", "replace", "default",
                        "via", gw], check=True)
        rows = {}
        for rep in range(REPS):
            for name, build, where in TOOLS:
                if where is not None and topo not in where:
                    continue
                if name in ONCE and rep > 0:
                    continue
                argv = build(target, port)
                with tempfile.TemporaryDirectory() as cwd:
                    r, secs, exit_secs = in_client(argv, cwd=cwd)
                    if name.startswith("dublin"):
                        p = os.path.join(cwd, "trace.json")
                        hops = parse_dublin(p) if os.path.exists(p) else {}
                        if os.path.exists(p):
                            with open(p) as f, open(os.path.join(raw, f"{topo}.{name.split()[0]}.{rep}.json"), "w") as g:
                                g.write(f.read())
                mpls, verdict = {}, None
                if name.startswith("tcpping-diag"):
                    hops, mpls, verdict = parse_ours(r.stdout)
                elif name.startswith("mtr"):
                    hops = parse_mtr(r.stdout)
                elif not name.startswith("dublin"):
                    hops = parse_lines(r.stdout)
                ok, says = judge(topo, name, hops, mpls, verdict)
                safe = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
                # the raw output of the first run of each, and of every run judged wrong
                keep = rep == 0 or not ok
                with open(os.path.join(raw, f"{topo}.{safe}.{rep}.txt") if keep else os.devnull, "w") as f:
                    f.write(f"$ {shlex.join(argv)}\n# exit {r.returncode}; answer complete after {secs:.4f} s, "
                            f"exited after {exit_secs:.4f} s\n{r.stdout}\n# stderr\n{r.stderr}")
                row = rows.setdefault(name, {"tool": name, "topology": topo, "command": shlex.join(argv),
                                             "runs": [], "says": says, "verdict": verdict})
                row["runs"].append({"ok": ok, "secs": round(secs, 4), "exit_secs": round(exit_secs, 4),
                                    "exit": r.returncode, "says": says})
                log(f"{topo:20} {name:32} {'right' if ok else 'WRONG'} {secs:7.3f} s ({exit_secs:.3f} s to exit)  {says}")
        for row in rows.values():
            t = [x["secs"] for x in row["runs"]]
            row["right"] = all(x["ok"] for x in row["runs"])
            row["right_runs"] = sum(x["ok"] for x in row["runs"])
            row["median_s"] = round(statistics.median(t), 4)
            row["max_s"] = round(max(t), 4)
            row["exit_median_s"] = round(statistics.median([x["exit_secs"] for x in row["runs"]]), 4)
            # the description of a run that went wrong, if any did
            bad = [x["says"] for x in row["runs"] if not x["ok"]]
            if bad:
                row["says"] = bad[0]
            results.append(row)
    mp_rows = run_multipath(raw)
    meta = {
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "smoke": SMOKE,
        "reps": REPS,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, kernel {platform.release()}",
        "wait_s": float(WAIT),
        "max_hops": int(MAXHOPS),
        "topologies": [{"name": t[0], "what": t[1], "target": f"{t[2]}:{t[3]}"} for t in TOPOLOGIES],
        "mp_topologies": [{"name": t[0], "what": t[1], "target": f"{t[2]}:{t[3]}",
                           "floor_per_router_95": floor(t[5], 0.05, False),
                           "floor_per_trace_95": floor(t[5], 0.05, True)} for t in MP_TOPOLOGIES],
    }
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "multipath": mp_rows}, f, indent=1)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(markdown(meta, results))
        f.write("\n" + markdown_multipath(meta, mp_rows))
    log(f"results in {OUT}")


def fmt_s(x):
    return f"{x * 1e3:.0f} ms" if x < 1 else f"{x:.2f} s"


def markdown(meta, results):
    lines = [f"# `tcpping-diag trace` and its peers in the trace lab ({meta['when']})", "",
             f"{meta['machine']}; every tool waits {meta['wait_s']:g} s per probe and probes at most "
             f"{meta['max_hops']} hops; {meta['reps']} interleaved runs per tool and topology "
             "(dublin-traceroute: one). Answer: wall time from the start until the tool's last line "
             "of output (its complete answer), median and longest; exit: median wall time until the "
             "process ended (tcpping-diag's includes ~10-20 ms of closing its packet socket: "
             "the kernel waits for an RCU grace period). All through `ip netns exec` (about 4 ms "
             "of it). Commands, and the raw output of each tool's first run and of every run judged "
             "wrong: `raw/`.", ""]
    for topo in meta["topologies"]:
        lines += [f"## {topo['name']}: {topo['what']} ({topo['target']})", "",
                  "| tool | right | what it shows | answer, median | answer, max | exit, median |",
                  "|---|---|---|---|---|---|"]
        for r in results:
            if r["topology"] != topo["name"]:
                continue
            right = "yes" if r["right"] else ("no" if r["right_runs"] == 0 else f"{r['right_runs']}/{len(r['runs'])}")
            says = r["says"].replace("|", "\\|")
            lines.append(f"| {r['tool']} | {right} | {says} | {fmt_s(r['median_s'])} | {fmt_s(r['max_s'])} | "
                         f"{fmt_s(r['exit_median_s'])} |")
        lines.append("")
    lines += ["## Commands", ""]
    seen = set()
    for r in results:
        if r["tool"] in seen:
            continue
        seen.add(r["tool"])
        lines.append(f"- {r['tool']}: `{r['command']}`")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
