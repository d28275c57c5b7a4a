//! The probe layer: every way tcpping-diag asks a target something, behind one interface.
//!
//! A [`Prober`] sends probes and reports their verdicts as [`PingResult`]s; a scheduler
//! decides when each probe leaves (the ping command's loop in `cmd::ping`; trace's rounds and
//! the many-targets loop build on the same interface). The kinds:
//! - [`connect`]: a TCP connection per probe (or one for all), the request, the echo;
//! - [`syn`]: a half-open SYN built with pnet, answered by SYN-ACK, RST or an ICMP error;
//! - [`ttl_connect`]: connect() with a TTL and the socket error queue, for `trace` without
//!   CAP_NET_RAW.
//!
//! [`open`] opens them (what needs privilege first, then the privilege dropped).
//!
//! The capture sockets they share:
//! - [`capture`]: the packet socket (AF_PACKET) with its classic BPF filters, the filter
//!   of `syn`'s answers, and the receive ring `syn` reads them from (`capture::ring`);
//! - [`tap`]: the wire tap that `connect` reads for the wire timestamps of its handshakes.
//!
//! Sending, matching answers to probes, and accounting are separate: the matching of each
//! kind is a pure function over captured bytes, tested without root.

pub mod capture;
pub mod connect;
pub mod open;
pub mod pmtu;
pub mod syn;
pub mod tap;
pub mod ttl_connect;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::icmp::correlate::Unmatched;
use crate::icmp::parse::IcmpError;
pub use crate::icmp::unmatched::IcmpTally;
use crate::icmp::IcmpReport;
pub use crate::icmp::Phase;

/// How each ping talks to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// New connection per ping, request, echo.
    Echo,
    /// New connection per ping, handshake only.
    ConnectOnly,
    /// One connection for all pings.
    Persistent,
    /// A hand-built SYN per probe, answered by SYN-ACK, RST or ICMP.
    Syn,
}

impl Mode {
    /// The mode's name in events and pictures (`"mode"` of the start event).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::ConnectOnly => "connect-only",
            Mode::Persistent => "persistent",
            Mode::Syn => "syn",
        }
    }

    /// Whether a probe's time is its handshake (no echo follows).
    pub fn handshake_only(self) -> bool {
        matches!(self, Mode::ConnectOnly | Mode::Syn)
    }
}

/// What to send: the probe's sequence number, where to, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    /// The probe's number in its run (from 1).
    pub seq: u64,
    pub target: SocketAddr,
    /// IPv4 TTL / IPv6 hop limit; None: the system's default.
    pub ttl: Option<u8>,
    /// Which of the prober's flows carries it (SYN probes with several constant flows:
    /// trace's `--flows`); 0 otherwise.
    pub flow: u16,
}

/// One kind of probe, driven by a scheduler: `send` when a probe is due and the prober is
/// `ready`, `poll` for verdicts in between.
pub trait Prober {
    /// Whether a probe to `target` may leave now. A persistent connection carries none but
    /// its first while it opens (then any number, pipelined); a constant SYN flow a bounded
    /// number (`SynProber::with_interval`).
    fn ready(&self, target: SocketAddr) -> bool;
    /// Send a probe now. Its verdict comes from `poll` (or at once, for kinds that cannot
    /// overlap probes and finish them in `send`).
    fn send(&mut self, spec: ProbeSpec);
    /// Wait at most until `until` for answers, timeouts or a wake-up (a signal) and append
    /// the probes concluded to `done`.
    fn poll(&mut self, until: Instant, done: &mut Vec<PingResult>) -> io::Result<()>;
    /// Probes sent and not concluded yet.
    fn in_flight(&self) -> usize;
    /// Conclude every probe in flight as `Status::Interrupted` (Ctrl-C, SIGTERM).
    fn interrupt(&mut self, done: &mut Vec<PingResult>);
    /// ICMP errors seen that were not attributed to a probe, so far.
    fn icmp_tally(&self) -> IcmpTally;
    /// Take the unattributed ICMP errors kept since the last call (for -v).
    fn drain_unmatched(&mut self) -> Vec<(IcmpError, Unmatched)>;
    /// Packets the kernel dropped before we could read them (a full capture queue), so
    /// far: answers may have been lost on our side.
    fn capture_drops(&mut self) -> u64 {
        0
    }
    /// Give the probes sent from now on this size and Don't Fragment behaviour (ping's
    /// `-s`/`-M`, `--pmtu`'s sizes; trace's `--size`). False: this kind of probe has no
    /// size (the probes stay as they were).
    fn set_shape(&mut self, _shape: Shape) -> bool {
        false
    }
}

/// The size of probes and their Don't Fragment behaviour: for connect probes, the
/// request's bytes and `IP_MTU_DISCOVER`; for SYN probes, the packet's bytes in all (IP
/// header included), DF always set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// None: the probe as it is without `-s`.
    pub size: Option<usize>,
    pub pmtud: connect::Pmtud,
}

/// The verdict of one ping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// The echo came back (or, with --connect-only, the handshake completed).
    Reply,
    /// The server answered LOST.
    Lost,
    /// Nothing within the timeout.
    Timeout,
    /// The target answered the SYN with RST: nothing listens on that port.
    Refused,
    /// An ICMP error about this ping.
    Icmp(IcmpReport),
    /// Any other failure, in words.
    Error(String),
    /// Ctrl-C or SIGTERM came while the ping waited: sent, never answered (as ping counts it).
    Interrupted,
}

#[derive(Clone, Debug)]
pub struct PingResult {
    pub seq: u64,
    /// Where the probe went (None only in tests that do not care).
    pub target: Option<SocketAddr>,
    /// The TTL / hop limit it was sent with, when one was set.
    pub ttl: Option<u8>,
    /// When the ping started (wall clock, for the record and for pictures over time).
    pub sent_at: SystemTime,
    pub status: Status,
    /// Handshake time, when this ping made a connection and it completed: from the wire
    /// or the kernel when they have one, else `connect_user` (see `connect_clock`).
    pub connect: Option<Duration>,
    /// Where `connect` comes from.
    pub connect_clock: Option<Clock>,
    /// Handshake time as user space saw it (connect() to writable).
    pub connect_user: Option<Duration>,
    /// Request to echo, when an answer (echo or LOST) came: from the kernel's transmit and
    /// receive timestamps when it has both, else `rtt_user`.
    pub rtt: Option<Duration>,
    /// Where `rtt` comes from.
    pub rtt_clock: Option<Clock>,
    /// Request to echo as user space saw it (send() to the recv() that completed it).
    pub rtt_user: Option<Duration>,
    pub local_port: Option<u16>,
    /// The TCP sequence number of a SYN probe (what tells the probes of a flow apart).
    pub tcp_seq: Option<u32>,
    /// Where the ping was when it concluded (for a timeout: what it was still waiting
    /// for): the handshake, or the echo after it.
    pub phase: Phase,
    /// Its time is the handshake's, no echo was asked for or counted: `--connect-only`,
    /// `--syn`, or a target found not to speak the echo protocol.
    pub handshake_only: bool,
    /// What this ping found out about its target that the run says once (see [`Notice`]).
    pub notice: Option<Notice>,
    /// What answered a SYN probe (SYN-ACK, RST, or the ACK of a target that still held an
    /// earlier probe's half-open connection); None for other probes and for no answer.
    pub answer: Option<syn::AnswerKind>,
    /// The headers of what concluded a SYN probe, for `packet::diff`: the packet an ICMP
    /// error quotes (our SYN as the router received it), or the target's SYN-ACK when the
    /// prober keeps them (`SynProber::with_headers`). None otherwise.
    pub seen: Option<crate::packet::diff::Headers>,
}

/// Something a ping found out about its target, said once per target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The target answered something that is not the echo protocol (a banner, another
    /// protocol's answer), or closed the connection after the request: from this ping on,
    /// its pings time the handshake (as `--connect-only`). `saw`: the first bytes it sent,
    /// escaped and cut short; None when it closed without a byte.
    NotEcho { saw: Option<String> },
    /// The target accepted the connection and sent nothing within the timeout, and has never
    /// echoed: it may not be an echo server (the ping stays a timeout: an echo server's loss
    /// looks the same).
    NoEcho,
    /// Requests of `size` bytes got no echo within the timeout while a control ping of
    /// `small` bytes to the same target, sent then on a new connection, got its echo, and
    /// no ICMP "packet too big" came back: a path MTU black hole.
    BlackHole { size: usize, small: usize },
}

impl PingResult {
    /// The verdict of `spec` with no times measured yet, stamped now.
    pub fn of(spec: &ProbeSpec, status: Status) -> Self {
        PingResult {
            target: Some(spec.target),
            ttl: spec.ttl,
            ..Self::new(spec.seq, status)
        }
    }

    /// A verdict with no times measured yet, stamped now.
    pub fn new(seq: u64, status: Status) -> Self {
        PingResult {
            seq,
            target: None,
            ttl: None,
            sent_at: SystemTime::now(),
            status,
            connect: None,
            connect_clock: None,
            connect_user: None,
            rtt: None,
            rtt_clock: None,
            rtt_user: None,
            local_port: None,
            tcp_seq: None,
            phase: Phase::Connect,
            handshake_only: false,
            notice: None,
            answer: None,
            seen: None,
        }
    }
}

/// Which clock measured a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Packet-socket timestamps at the network device, as tcpdump sees the wire.
    Wire,
    /// The kernel: TCP_INFO's handshake RTT, or socket transmit/receive timestamps.
    Kernel,
    /// User space, around the system calls.
    User,
}

impl Clock {
    pub fn as_str(self) -> &'static str {
        match self {
            Clock::Wire => "wire",
            Clock::Kernel => "kernel",
            Clock::User => "user",
        }
    }
}
