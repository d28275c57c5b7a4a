//! Opening a prober, the one way every command does it: what needs CAP_NET_RAW (the raw ICMP
//! sockets, the SYN prober's sockets, the wire tap) is opened first, for the need described
//! ([`Need`]); then every privilege of every thread is dropped ([`privilege::drop_all`]),
//! before anything untrusted is read and before any thread of ours starts; then the prober
//! is built and handed back ([`Opened`]). A missing privilege is said in one line, from
//! [`privilege`], which holds every such line.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::connect::ConnectProber;
use super::syn::{sockets, Flow, SynProber, SynSockets};
use super::tap::WireTap;
use super::ttl_connect::TtlConnectProber;
use super::{Mode, Prober};
use crate::error::Error;
use crate::icmp::listener::{Capture, RawIcmp};
use crate::icmp::Registry;
use crate::net::{self, Waker};
use crate::privilege;

/// The probes a command sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probes {
    /// A TCP connection per probe, or one for all (`mode`: not `Mode::Syn`). With `icmp`,
    /// the raw ICMP sockets attribute errors as they arrive (without the privilege, one line
    /// says so and the kernel's error queue stands in); with `echo_fallback`, a target that
    /// does not speak the echo protocol has its handshakes timed.
    Connect {
        mode: Mode,
        icmp: bool,
        echo_fallback: bool,
    },
    /// Hand-built SYNs: `flows` constant flows, or a source port per probe.
    Syn {
        flow: Flow,
        flows: usize,
        without: NoRaw,
    },
    /// connect() with a TTL and the socket error queue on `flows` constant flows: no
    /// privilege needed.
    TtlConnect { flows: usize },
}

impl Probes {
    /// ping's probes, to one target or many: hand-built SYNs for `Mode::Syn` (without
    /// CAP_NET_RAW: one line, exit status 2, nothing sent), else connect() probes.
    pub fn ping(mode: Mode, flow: Flow, icmp: bool, echo_fallback: bool) -> Probes {
        if mode == Mode::Syn {
            Probes::Syn {
                flow,
                flows: 1,
                without: NoRaw::Fail(privilege::NO_RAW_SYN),
            }
        } else {
            Probes::Connect {
                mode,
                icmp,
                echo_fallback,
            }
        }
    }
}

/// What SYN probes do when their raw sockets need a privilege the process lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoRaw {
    /// Fail with this line (exit status 2, nothing sent).
    Fail(&'static str),
    /// trace's default: connect() probes with a TTL instead (as many constant flows), said
    /// in one line.
    TtlConnect,
}

/// Where the probes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Targets {
    /// One target: its family's sockets, filtered on its port; connect probes get the wire
    /// tap (the packet socket that times each handshake on the wire) and leave from the
    /// route's source address, looked up once.
    One(SocketAddr),
    /// Many targets, of the families given (SYN probes; a host without IPv6 falls back to
    /// IPv4 when both are asked), to `port` when they share one (else any port). The ICMP
    /// capture of connect probes listens on both families.
    Many {
        v4: bool,
        v6: bool,
        port: Option<u16>,
    },
}

/// What a command needs opened.
#[derive(Clone, Copy, Debug)]
pub struct Need {
    pub probes: Probes,
    pub targets: Targets,
    pub timeout: Duration,
    /// The pace of ping's probes (-i; zero: back to back). None: trace's rounds, one probe
    /// at a time per flow.
    pub interval: Option<Duration>,
    /// Keep unattributed ICMP errors for -v.
    pub verbose: bool,
    /// The probes' TOS / traffic class and (SYN probes) ECN setup: `--tos`, `--ecn`.
    pub marks: crate::packet::build::Marks,
}

/// Which kind of prober was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Syn,
    TtlConnect,
}

/// The prober, and what the command says about it.
pub struct Opened {
    pub prober: Box<dyn Prober>,
    pub kind: Kind,
    /// The SYN prober's reserved source ports (empty for other kinds).
    pub ports: Vec<u16>,
    /// Our source address toward the one target (None: many targets, or no route).
    pub source: Option<IpAddr>,
}

/// What was opened while privileged.
enum Privileged {
    Connect {
        mode: Mode,
        echo_fallback: bool,
        raw: Vec<RawIcmp>,
        wire: Option<WireTap>,
    },
    Syn(Box<SynProber>),
    TtlConnect {
        flows: usize,
    },
}

/// Open what `need` needs while privileged, drop every privilege, and build the prober
/// (its ICMP listener thread, if any, starts after the drop). `waker` wakes the prober
/// (signals, the listener), `stop` stops it.
pub fn open(need: &Need, waker: &Arc<Waker>, stop: &Arc<AtomicBool>) -> Result<Opened, Error> {
    let privileged = match need.probes {
        Probes::Connect {
            mode,
            icmp,
            echo_fallback,
        } => Privileged::Connect {
            mode,
            echo_fallback,
            raw: if icmp {
                open_icmp(need.targets)
            } else {
                Vec::new()
            },
            wire: match need.targets {
                Targets::One(t) => WireTap::open(t.port()).ok(),
                Targets::Many { .. } => None,
            },
        },
        Probes::Syn {
            flow,
            flows,
            without,
        } => match open_syn(need, flow, flows, without, waker, stop)? {
            Some(p) => Privileged::Syn(Box::new(p)),
            None => Privileged::TtlConnect { flows },
        },
        Probes::TtlConnect { flows } => Privileged::TtlConnect { flows },
    };
    if let Err(e) = privilege::drop_all() {
        return Err(Error::Setup(format!("drop capabilities: {e}")));
    }
    let target = match need.targets {
        Targets::One(t) => Some(t),
        Targets::Many { .. } => None,
    };
    let source = target.and_then(|t| net::source_address_for(t).ok());
    Ok(match privileged {
        Privileged::Connect {
            mode,
            echo_fallback,
            raw,
            wire,
        } => {
            let registry = Arc::new(Registry::new().with_unmatched_log(need.verbose));
            let capture = if raw.is_empty() {
                None
            } else {
                let tx = waker
                    .sender()
                    .map_err(|e| Error::io("create wake-up channel", e))?;
                Some(
                    Capture::start(raw, Arc::clone(&registry), tx)
                        .map_err(|e| Error::io("start ICMP listener", e))?,
                )
            };
            let mut p = ConnectProber::new(
                mode,
                need.timeout,
                registry,
                Arc::clone(waker),
                Arc::clone(stop),
            )
            .map_err(|e| Error::io("start the event loop", e))?
            .with_capture(capture)
            .with_echo_fallback(echo_fallback)
            .with_wire_tap(wire)
            .with_spin(need.interval.is_some_and(|i| i.is_zero()))
            .with_tos(need.marks.tos);
            if let Some(t) = target {
                p = p.with_source(t.ip(), source);
            }
            Opened {
                prober: Box::new(p),
                kind: Kind::Connect,
                ports: Vec::new(),
                source,
            }
        }
        Privileged::Syn(p) => Opened {
            ports: p.ports(),
            prober: p,
            kind: Kind::Syn,
            source,
        },
        Privileged::TtlConnect { flows } => {
            // connect() probes hold a socket each while in flight.
            net::raise_open_files();
            let Some(t) = target else {
                return Err(Error::Setup(
                    "connect() probes with a TTL go to one target".into(),
                ));
            };
            let p =
                TtlConnectProber::new(t, flows, need.timeout, Arc::clone(waker), Arc::clone(stop))
                    .map_err(|e| {
                        Error::io("reserve source ports for the connect() probes' flows", e)
                    })?;
            Opened {
                ports: p.ports(),
                prober: Box::new(p),
                kind: Kind::TtlConnect,
                source,
            }
        }
    })
}

/// The raw ICMP sockets: the one target's family (without it, one line and none) and the
/// other's when it opens; for many targets, each family's that opens (the line only when
/// none did for want of the privilege).
fn open_icmp(targets: Targets) -> Vec<RawIcmp> {
    match targets {
        Targets::One(t) => {
            let v6 = t.is_ipv6();
            match RawIcmp::open(v6) {
                Ok(s) => {
                    let mut socks = vec![s];
                    if let Ok(other) = RawIcmp::open(!v6) {
                        socks.push(other);
                    }
                    socks
                }
                Err(e) => {
                    if e.kind() == io::ErrorKind::PermissionDenied {
                        eprintln!("{}", privilege::NO_RAW_NOTICE);
                    } else {
                        eprintln!(
                            "tcpping-diag: ICMP capture off: open raw ICMP socket: {}",
                            net::describe_io(&e)
                        );
                    }
                    Vec::new()
                }
            }
        }
        Targets::Many { .. } => {
            let mut raw = Vec::new();
            let mut denied = false;
            for v6 in [false, true] {
                match RawIcmp::open(v6) {
                    Ok(s) => raw.push(s),
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => denied = true,
                    Err(_) => {}
                }
            }
            if denied && raw.is_empty() {
                eprintln!("{}", privilege::NO_RAW_NOTICE);
            }
            raw
        }
    }
}

/// The SYN prober (its sockets, then its reserved ports). None: no privilege, and `without`
/// says to fall back to connect() probes with a TTL.
fn open_syn(
    need: &Need,
    flow: Flow,
    flows: usize,
    without: NoRaw,
    waker: &Arc<Waker>,
    stop: &Arc<AtomicBool>,
) -> Result<Option<SynProber>, Error> {
    // ping's words name its flag, trace's the probes.
    let (sockets_for, ports_for) = match need.interval {
        Some(_) => ("--syn", "--syn"),
        None => ("SYN probes", "the SYN probes"),
    };
    let (v4, v6, port) = match need.targets {
        Targets::One(t) => (t.is_ipv4(), t.is_ipv6(), Some(t.port())),
        Targets::Many { v4, v6, port } => (v4, v6, port),
    };
    // Err: whether the sockets failed to open (else the ports to be reserved), and why.
    let build = |v4: bool, v6: bool| -> Result<SynProber, (bool, io::Error)> {
        let one = matches!(need.targets, Targets::One(_));
        let ring = sockets::ring_for(one, flow, flows);
        // Many targets: a thread of its own sends (see `sockets`).
        let sockets = SynSockets::open(v4, v6, port, ring)
            .map_err(|e| (true, e))?
            .with_sender_thread(!one);
        SynProber::new(
            sockets,
            flow,
            flows,
            need.timeout,
            need.verbose,
            Arc::clone(waker),
            Arc::clone(stop),
        )
        // Trace (no interval) keeps the SYN-ACK's headers for its middlebox report.
        .map(|p| {
            p.with_marks(need.marks)
                .with_headers(need.interval.is_none())
                .with_nap(!one)
        })
        .map_err(|e| (false, e))
    };
    let p = match build(v4, v6) {
        Ok(p) => Ok(p),
        // No IPv6 on this host: IPv4 targets still work.
        Err((_, e)) if v4 && v6 && e.kind() != io::ErrorKind::PermissionDenied => {
            eprintln!(
                "tcpping-diag: IPv6 SYN probes unavailable ({}): IPv4 only",
                net::describe_io(&e)
            );
            build(true, false)
        }
        Err(e) => Err(e),
    };
    let p = match p {
        Ok(p) => p,
        Err((true, e)) if e.kind() == io::ErrorKind::PermissionDenied => {
            return match without {
                NoRaw::Fail(line) => Err(Error::Setup(line.into())),
                NoRaw::TtlConnect => {
                    eprintln!("{}", privilege::NO_RAW_TRACE);
                    Ok(None)
                }
            };
        }
        Err((true, e)) => {
            return Err(Error::io(
                format!("open the raw sockets for {sockets_for}"),
                e,
            ))
        }
        Err((false, e)) => {
            return Err(Error::io(
                format!("reserve source ports for {ports_for}"),
                e,
            ))
        }
    };
    Ok(Some(match need.interval {
        Some(i) => p.with_spin(i.is_zero()).with_interval(i),
        None => p,
    }))
}
