//! The hand-written sections of the man pages, one `Page` per command. Options come from clap;
//! what is here is what `--help` cannot say: what a verdict means, what privileges do, exit
//! status, files, and examples.
//!
//! A new subcommand needs a `Page` here with at least one example (a test says so), and a new
//! mode of the ping gets its examples on the main page. Every example must parse with the real
//! command line (a test runs them through `Cli`). Text is plain; `backquotes` mark bold.

use super::Block::{Example, Items, Literal, Para};
use super::{Page, Section};

pub const PAGES: &[Page] = &[
    Page {
        command: "",
        sections: &[
            Section {
                title: "VERDICTS",
                blocks: &[
                    Para("Each ping opens a TCP connection to HOST:PORT, sends `ping SEQ TIMESTAMP`, and waits for the echo. It ends with one verdict:"),
                    Items(&[
                        ("`reply`", "The echo came back (with `--connect-only`, or against a service that does not echo: the handshake completed)."),
                        ("`LOST`", "The server answered LOST: the simulated loss of `tcpping-diag serve` and of the original Python server."),
                        ("`timeout`", "Nothing within `-W`. The line names the phase the ping was still in: the echo (connected, but no echo; or no echo on the open connection, with `--persistent`: the server or the path lost the data) or the handshake (no answer to the handshake: a filtered or blackholed path)."),
                        ("`refused`", "The target answered the SYN with RST: nothing listens on that port."),
                        ("From ROUTER: REASON (ICMP type T code C)", "An ICMP error that quotes this very ping (its source port, addresses and sequence number): the reporting router or host, the reason in words (host unreachable, administratively prohibited, time exceeded, fragmentation needed with the MTU, ...) and the time after the ping started. The line ends with `, while waiting for the echo` when the error came after the handshake. The ping ends when the error arrives, not at the timeout."),
                        ("`error: ...`", "Anything else, in words (No route to host; with `--echo` or from a server that has echoed before: unexpected reply, connection closed by the server before the echo)."),
                        ("`interrupted`", "SIGINT or SIGTERM came while the ping waited: it counts as sent and not answered, as ping counts it."),
                    ]),
                    Para("A service that does not speak the echo protocol (an SSH banner, an HTTP 400, a TLS server closing after the request) is said once, in a `note:` line naming what it sent, and from that ping on its pings time the handshake, as `--connect-only`, and are replies. `--echo` keeps such answers errors, for testing an echo server. A service that accepts and stays silent gets a one-time hint that `--connect-only` or `--syn` time the handshake; its pings stay timeouts."),
                    Para("With `--syn` a probe is one hand-built SYN instead of a connection: `reply` is a SYN-ACK (port open) or an ACK of an earlier probe's SYN (the target still held that probe's half-open connection when this SYN came: open too, JSON `answer` `ack`), `refused` an RST (closed), and ICMP errors are matched by the quoted 4-tuple and TCP sequence number. Our kernel answers the SYN-ACK with RST: the server's application never sees the probe. It needs CAP_NET_RAW; without it, one line and exit status 2."),
                    Para("With `--json` the verdict is the `status` field of each `ping` event: `reply`, `lost`, `timeout`, `refused`, `icmp`, `error` or `interrupted`. A `start` event begins the run (not with `-q`) and a `summary` event ends it. The full schema is in the README, /usr/share/doc/tcpping-diag/."),
                ],
            },
            Section {
                title: "TIMES",
                blocks: &[
                    Para("`connect` is the TCP handshake and `rtt` the request-to-echo round trip, both measured as close to the wire as the kernel allows: with raw-socket privileges the handshake is timed by a packet socket at the network device (`connect_clock` `wire`), otherwise by the kernel's own TCP_INFO measurement; the echo by SO_TIMESTAMPING software timestamps. The times user space saw are in the JSON too (`connect_user_ms`, `rtt_user_ms`)."),
                    Para("The summary at the end, and on SIGINT or SIGTERM, has the counts per verdict, the loss, min/avg/max/mdev, p50/p90/p99 and jitter of the round trips, the handshake times, and the ICMP errors by reason, router and count."),
                ],
            },
            Section {
                title: "MANY TARGETS",
                blocks: &[
                    Para("Two or more targets, `-f FILE` or `--metrics ADDR:PORT` ping every target at its own interval from one event loop (no thread per target), with one ICMP listener for all, and end with a summary per target and one table line per target. Human lines start with the target; JSON events carry `target` and `labels`."),
                    Para("The targets file has one `HOST:PORT` per line, optionally followed by labels `key=value` (they become Prometheus labels); `#` starts a comment. A bad line is reported with its line number and skipped (the first 5 of a reading, then a count). The file must be a regular file of at most 16 MiB, or it is refused. A target given twice with the same labels (on the command line or in the file) is probed once; with other labels, the later line is skipped. SIGHUP reads the file again, off the probing loop: targets are added and removed without a restart. A name that does not resolve is reported once and retried with backoff; a lookup has 5 s, and a slow one never holds up the others."),
                    Literal("db1.example:5432   name=db1 tier=prod\n10.0.0.7:443       name=lb   # the load balancer\n[2001:db8::10]:22"),
                    Para("`--metrics ADDR:PORT` serves /metrics (Prometheus text, or OpenMetrics when asked for) while running: probes by verdict, ICMP errors by type, code and reporting router, the last RTT and whether the last probe succeeded, per target and label set; RTT and handshake histograms shared by every target (`--metrics-histograms per-target`: one per target, 20 series a target each)."),
                ],
            },
            Section {
                title: "PRIVILEGES",
                blocks: &[
                    Para("ICMP errors are matched to pings through raw ICMP sockets, which need root or the CAP_NET_RAW capability. The Debian package gives the installed binary that capability as a file capability (`setcap cap_net_raw+ep /usr/bin/tcpping-diag`, as iputils ping does), so any user gets full ICMP capture. After a `cargo install`, run that command once yourself. tcpping-diag opens its raw sockets and then drops every capability before the first ping: the pinging runs with none."),
                    Para("Without the capability it prints one line, and goes on: an ICMP error that fails the handshake is still reported, from the kernel's per-socket error queue (`\"source\":\"recverr\"` in the JSON, `\"raw\"` with capture). What is lost: errors after the handshake, the count of ICMP errors that quote none of our pings, and for IPv6 the speed (Linux fails an IPv6 connect only on the error for the retransmitted SYN, a second later)."),
                    Literal("tcpping-diag: ICMP capture off: raw sockets need root or CAP_NET_RAW (...)"),
                    Para("Where the file system does not keep file capabilities, the package's installation says so and the tool works in that unprivileged mode; run it with sudo for full capture. `getcap /usr/bin/tcpping-diag` shows whether the capability is set."),
                ],
            },
            Section {
                title: "EXIT STATUS",
                blocks: &[Items(&[
                    ("0", "At least one ping got a reply (with `--connect-only`: a completed handshake). A closed output pipe is not an error."),
                    ("1", "No ping got a reply."),
                    ("2", "A usage or setup error: bad flags, an unresolvable host, port 0, ... One line on standard error says what failed."),
                ])],
            },
            Section {
                title: "SERVICES",
                blocks: &[
                    Para("The Debian package ships two systemd units, disabled:"),
                    Items(&[
                        ("`tcpping-diag-serve.service`", "The echo server (see tcpping-diag-serve(1)) as an unprivileged dynamic user with no capabilities. Its flags are in /etc/tcpping-diag/serve.conf."),
                        ("`tcpping-diag-monitor@NAME.service`", "A long-running monitor of the targets listed in /etc/tcpping-diag/NAME.targets, with its flags in /etc/tcpping-diag/NAME.conf (copy example.conf and example.targets). It runs `tcpping-diag -f FILE --metrics ADDR:PORT`, the many-targets mode with a metrics endpoint: it needs a version of tcpping-diag that has that mode. Its only privilege is CAP_NET_RAW, for ICMP capture."),
                    ]),
                ],
            },
            Section {
                title: "FILES",
                blocks: &[Items(&[
                    ("/etc/tcpping-diag/", "Configuration of the systemd units (Debian package)."),
                    ("/usr/share/doc/tcpping-diag/", "The README: JSON schema, the lab, the benchmarks."),
                ])],
            },
            Section {
                title: "EXAMPLES",
                blocks: &[
                    Example("Five pings to a tcpping-diag server:", "tcpping-diag 127.0.0.1:12001 -n 5"),
                    Example("Time only the TCP handshake, against any TCP service:", "tcpping-diag example.net:443 --connect-only -n 10"),
                    Example("All pings over one connection: the application round trip without the handshake:", "tcpping-diag 192.0.2.7:12001 --persistent -n 100 -i 0.2"),
                    Example("Back-to-back pings over IPv6, one JSON object per line:", "tcpping-diag [2001:db8::7]:12001 -n 100 -i 0 --json"),
                    Example("Where does the path stop? Routers answer time exceeded to a ping with a TTL of 3:", "tcpping-diag 192.0.2.7:443 --connect-only --ttl 3 -n 3"),
                    Example("1400-byte requests with DF: a smaller link on the path answers 'packet too big', or is named a black hole:", "tcpping-diag 192.0.2.7:12001 -s 1400 -n 5"),
                    Example("The path MTU, by bisection, and which router reports it (or that none does):", "tcpping-diag 192.0.2.7:12001 --pmtu"),
                    Example("Half-open SYN probes: is the port open, without bothering the application behind it (needs CAP_NET_RAW):", "tcpping-diag 192.0.2.7:5432 --syn -n 10"),
                    Example("SYN probes as fast as answers come, each on its own source port:", "tcpping-diag 192.0.2.7:443 --syn --flow per-probe -i 0 -n 10000 -q"),
                    Example("Several targets at once, each at its own interval, one table line per target at the end:", "tcpping-diag db1.example:5432 192.0.2.7:443 [2001:db8::10]:22 -i 5"),
                    Example("Every target of a file (re-read on SIGHUP), with SYN probes, Prometheus metrics on port 9464:", "tcpping-diag -f /etc/tcpping-diag/example.targets --syn --metrics 127.0.0.1:9464 -q"),
                    Example("Only the summary, also listing ICMP errors that match none of our pings:", "tcpping-diag 192.0.2.7:12001 -n 1000 -i 0.01 -q -v"),
                    Example("The statuses of 20 pings, with jq:", "tcpping-diag 192.0.2.7:12001 -n 20 --json | jq -r .status"),
                ],
            },
        ],
    },
    Page {
        command: "serve",
        sections: &[
            Section {
                title: "PROTOCOL",
                blocks: &[
                    Para("One thread per client; a thread whose client has gone waits up to 5 s for the next one. A request is a line of up to 9000 bytes (room for `-s 9000`), several may come over one connection. The reply is the request in upper case (with a newline if the request had one), or `LOST` for a lost ping (`--loss-mode reply`), or nothing at all (`--loss-mode silent`: the client sees a real timeout). A request without a newline, sent in one write by a client that then waits, as the original Python client does, is answered without a newline."),
                    Para("A line over 9000 bytes gets `ERROR request longer than 9000 bytes` and the connection is closed; bytes that are not UTF-8 get `ERROR request is not UTF-8 text` and the connection goes on. Neither touches other clients."),
                    Para("At start the server raises its soft open-file limit to the hard limit, and warns when `--max-clients` does not fit under it. SIGINT and SIGTERM stop it with a totals line."),
                ],
            },
            Section {
                title: "LOG",
                blocks: &[Literal(
                    "Server Started Listening on 0.0.0.0:12001\n\
                     loss 20.0% (answered LOST), seed 7, max 4096 clients, idle timeout 1m\n\
                     Message sent by client = ping 1 1795691062.304788 from ('127.0.0.1', 36727)\n\
                     Packet lost\n\
                     Server stopped: 2 connections, 0 rejected, 2 messages, 1 answered, 1 lost, 0 invalid",
                )],
            },
            Section {
                title: "SERVICE",
                blocks: &[
                    Para("The Debian package ships `tcpping-diag-serve.service`, disabled. It runs the server as a dynamic unprivileged user with no capabilities, a read-only file system and a system call filter. Its flags are the `SERVE_FLAGS` line of /etc/tcpping-diag/serve.conf:"),
                    Literal("SERVE_FLAGS=\"--listen 0.0.0.0:12001 --loss 0.2 -q\""),
                    Para("Then `systemctl enable --now tcpping-diag-serve`; its log is in `journalctl -u tcpping-diag-serve`."),
                ],
            },
            Section {
                title: "EXIT STATUS",
                blocks: &[Items(&[
                    ("0", "Stopped by SIGINT or SIGTERM."),
                    ("2", "A usage or setup error (bad flags, the address cannot be bound): one line on standard error."),
                ])],
            },
            Section {
                title: "FILES",
                blocks: &[Items(&[(
                    "/etc/tcpping-diag/serve.conf",
                    "Flags of tcpping-diag-serve.service (Debian package).",
                )])],
            },
            Section {
                title: "EXAMPLES",
                blocks: &[
                    Example("The original server: port 12001, 20% of pings answered LOST:", "tcpping-diag serve"),
                    Example("A reproducible loss pattern, IPv6 and IPv4:", "tcpping-diag serve --listen [::]:12001 --loss 0.2 --seed 7"),
                    Example("Lose pings silently, so clients see real timeouts, and do not log every message:", "tcpping-diag serve --loss 0.1 --loss-mode silent -q"),
                    Example("A plain echo server for many clients:", "tcpping-diag serve --loss 0 --max-clients 10000 --idle-timeout 5m -q"),
                ],
            },
        ],
    },
    Page {
        command: "demo",
        sections: &[
            Section {
                title: "WHAT IT SHOWS",
                blocks: &[Para("Starts a server on loopback that loses 30% of pings, and pings it three ways: one connection per ping, one connection for all pings, and a port where nothing listens. No privileges are used: ICMP diagnoses need a real path, which the lab of the source tree builds (`sudo scripts/lab.sh demo`).")],
            },
            Section {
                title: "EXIT STATUS",
                blocks: &[Items(&[
                    ("0", "The demo ran."),
                    ("2", "It could not start (for example, no loopback)."),
                ])],
            },
            Section {
                title: "EXAMPLES",
                blocks: &[Example("Watch it:", "tcpping-diag demo")],
            },
        ],
    },
    Page {
        command: "trace",
        sections: &[
            Section {
                title: "HOW IT PROBES",
                blocks: &[
                    Para("SYNs to the target port with TTL (IPv6: hop limit) 1 to `--max-hops`, `--queries` per hop, every hop in flight at once, each probe concluded by its answer or at `-W`. Time exceeded names the router of a hop; a SYN-ACK or RST from the target means it was reached (port open or closed); destination unreachable or administratively prohibited ends the path at the router that says so. Answers are matched by the quoted 4-tuple and TCP sequence number."),
                    Para("Every probe of a flow has the same 5-tuple (Paris traceroute's constant flow), so a load balancer hashing the flow keeps them on one path. `--flows N` probes each hop on N flows (source ports) and reports every router seen and which flows saw it. Whether they were enough is the multipath detection stopping rule of Veitch et al., per router: the flows that crossed a router must be enough to rule out one more next hop of it (at one split, 7 for a second, 12 for a third), at `--confidence` for the whole trace. `--multipath` searches instead, hop by hop, spending new flows only where a router branches, until the rule holds everywhere. Every burst is paced at `--rate` probes per second (2000)."),
                    Para("MPLS label stacks (RFC 4950) and interface information (RFC 5837) carried by ICMP extensions (RFC 4884) are shown per hop. `--cycles N` repeats the rounds and ends with a report of loss, last, average, best, worst and deviation per hop, as mtr does."),
                ],
            },
            Section {
                title: "VERDICT",
                blocks: &[
                    Para("The last line says where the path stops, in words: `reached 10.0.0.5:443 (open) in 4 hops`; `path ends at hop 3: 10.0.2.1 says communication administratively prohibited`; `silent after hop 2 (10.0.1.1): nothing answers beyond it`. A router that rate-limits its ICMP errors (answers some probes, not all) is not called a break. When some flows reach the target and others break, the verdict is `partial`, grouped by branch: `reached 10.0.0.5:443 on 10 of 16 flows; the 6 through 10.0.2.2 (hop 2) are silent after hop 2 (10.0.2.2): it drops TCP to port 443`. A single flow that breaks first tries 6 other flows at the hop where it broke and at the target (one more round trip): when some get through, it says a load-balanced branch breaks, and the verdict is `partial`. With `--json`, one `probe` event per probe, one `hop` event per hop, and a final `trace` event carry the same as fields."),
                ],
            },
            Section {
                title: "PRIVILEGES",
                blocks: &[Para("SYN probes need CAP_NET_RAW. Without it (or with `--probe connect`), trace uses connect() with IP_TTL / IPV6_UNICAST_HOPS and the socket error queue, as tracepath does, and still on constant flows: each flow's source port is held for the run and every probe of the flow binds it, so `--flows` works too. The kernel keeps one connection per 4-tuple, so a flow's probes leave one at a time (each closed with RST, no TIME_WAIT): a silent hop costs each probe of a flow the timeout, so a flow silent at 3 hops in a row is given up for the cycle (its hops above are not probed). No ICMP extensions; times from the ICMP's kernel receive timestamp; one line says so.")],
            },
            Section {
                title: "EXIT STATUS",
                blocks: &[Items(&[
                    ("0", "The target was reached (port open or closed)."),
                    ("1", "It was not."),
                    ("2", "A usage or setup error: one line on standard error says what failed."),
                    ("3", "Partly: some flows reached the target and others broke (verdict `partial`), with `--flows`, or when a single flow broke and other flows tried after it got through."),
                ])],
            },
            Section {
                title: "EXAMPLES",
                blocks: &[
                    Example("Where does TCP to port 443 stop?", "tcpping-diag trace example.net:443"),
                    Example("Six flows per hop: find load-balanced next hops:", "tcpping-diag trace example.net:443 --flows 6"),
                    Example("Every load-balanced path, flows spent where routers branch:", "tcpping-diag trace example.net:443 --multipath"),
                    Example("Twenty rounds, then loss and round trips per hop:", "tcpping-diag trace example.net:443 --cycles 20"),
                    Example("Without privileges, with connect() probes:", "tcpping-diag trace example.net:22 --probe connect"),
                    Example("1500-byte SYNs with DF: the hop before a smaller link, with its MTU or as a black hole:", "tcpping-diag trace 192.0.2.7:12001 --size 1500"),
                ],
            },
        ],
    },
    Page {
        command: "report",
        sections: &[
            Section {
                title: "PICTURES",
                blocks: &[
                    Para("Reads the NDJSON that `--json` runs wrote (files, or standard input) and draws a picture (SVG or PNG), streaming: memory stays flat however long the run was. The kind of picture follows from the events:"),
                    Items(&[
                        ("one target", "Round-trip time over time: every probe up to 2,000 (echo and handshake times told apart), else a smokeping-style band per time bucket (median line, percentile smoke). Failures below on the same time axis, coloured by reason (LOST, timeout, refused, each ICMP reason with its router), with the loss per bucket."),
                        ("many targets", "Several files, or events with a `target` field: one row per target, the worst first (by loss, then by median round trip)."),
                        ("trace", "The events of `trace --json`: the round-trip distribution per hop, the break point marked, the verdict as the subtitle."),
                    ]),
                    Para("`--plot FILE.svg` on a ping run (one target or many) draws the same picture of that run when it ends (also on SIGINT or SIGTERM)."),
                    Para("The picture is SVG, or PNG when the name ends in `.png`; other extensions are refused. The destination is checked at start; a regular file is replaced through a temporary file beside it (nothing left behind on failure), while `-`, FIFOs and devices are written directly. Input lines longer than 1 MiB are skipped and named, and pings with a time beyond ±1e12 s are skipped and counted."),
                ],
            },
            Section {
                title: "EXIT STATUS",
                blocks: &[Items(&[
                    ("0", "The picture was written."),
                    ("2", "Nothing to draw, or the input or output could not be read or written: one line on standard error says which."),
                ])],
            },
            Section {
                title: "EXAMPLES",
                blocks: &[
                    Example("Draw a run written with --json:", "tcpping-diag report run.ndjson -o run.svg"),
                    Example("One row per target, from three runs:", "tcpping-diag report a.ndjson b.ndjson c.ndjson -o many.svg"),
                ],
            },
        ],
    },
    Page {
        command: "generate",
        sections: &[
            Section {
                title: "FILES WRITTEN",
                blocks: &[Items(&[
                    ("`man`", "tcpping-diag.1, and tcpping-diag-NAME.1 for every subcommand. Install them under /usr/share/man/man1/ or /usr/local/share/man/man1/."),
                    ("`completions`", "tcpping-diag.bash (for /usr/share/bash-completion/completions/tcpping-diag), _tcpping-diag (zsh, a directory of $fpath such as /usr/local/share/zsh/site-functions/), tcpping-diag.fish (~/.config/fish/completions/)."),
                ])],
            },
            Section {
                title: "EXIT STATUS",
                blocks: &[Items(&[
                    ("0", "The files were written; their paths are printed, one per line."),
                    ("2", "A file or the directory could not be written: one line on standard error."),
                ])],
            },
            Section {
                title: "EXAMPLES",
                blocks: &[
                    Example("Man pages, after a cargo install:", "tcpping-diag generate man /usr/local/share/man/man1"),
                    Example("Completion scripts into a directory:", "tcpping-diag generate completions completions"),
                ],
            },
        ],
    },
];
