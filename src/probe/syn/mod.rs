//! The SYN probe: one hand-built SYN per probe (pnet's packet builders, checksums included),
//! answered by SYN-ACK (port open), RST (closed), an ICMP error, or nothing (timeout).
//! Nothing is opened in the target's application: our kernel answers its SYN-ACK with RST,
//! because no socket of ours is connected on that port.
//!
//! One file per concern:
//! - `packet::build`: the SYN itself, built once per flow and re-stamped per probe, one buffer
//!   reused for every probe.
//! - [`sockets`]: sending on a raw IP socket (`IPPROTO_RAW`: we write the IP header too),
//!   the SYNs of a burst queued in an outbox and sent with one `sendmmsg`; one packet
//!   socket (`capture::PacketSocket`, `capture::answers_filter`) sees our SYN leave and the
//!   SYN-ACK, RST or ICMP error arrive, each with the kernel's own timestamp at the device
//!   (the time is the wire's), read from its receive ring (`capture::ring`, TPACKET_V2: no
//!   system call per packet). Behind the [`SynIo`] trait, so the loop is tested without
//!   root.
//! - [`classify`](mod@classify): what a captured packet is, as far as SYN probing cares
//!   ([`Seen`]).
//! - [`matcher`] ([`Matcher`], pure, tested on captured bytes): an answer belongs to the
//!   probe whose 4-tuple it carries and whose sequence number it acknowledges
//!   (ack = seq + 1); an ICMP error to the probe whose 4-tuple *and* sequence number it
//!   quotes.
//! - [`prober`]: [`SynProber`], the driver: sends when asked, reads and matches answers,
//!   concludes timeouts.
//! - Flows: by default every probe of a target has the same 5-tuple (a constant flow, as
//!   Paris traceroute keeps it, so a load balancer hashing the flow keeps them on one path)
//!   and probes are told apart by sequence number and IPv4 ID. With `Flow::PerProbe` each
//!   probe takes the next port of a reserved pool, as classic tools do.
//! - The source ports are reserved for the run by TCP sockets bound to them: the kernel never
//!   gives them to another connection, and answers to them are ours.
//!
//! Several probes on one flow: until our RST reaches the target (about one round trip after
//! its SYN-ACK left), it holds a half-open connection for the 4-tuple, and a second SYN that
//! meets it is out of that connection's window: Linux answers it with a pure ACK
//! acknowledging the earlier SYN (ack = earlier seq + 1; `tcp_check_req`), not with
//! SYN-ACK. The matcher takes that ACK as the answer of the oldest later probe of the flow
//! in flight ([`Matcher::with_ack_answers`]: the port is open, `answer` says "ack"). So with
//! an interval (`SynProber::with_interval`) a constant flow starts a probe every interval
//! whatever is in flight (up to `MAX_OVERLAP` per target); back to back (-i 0) it sends the
//! next probe as soon as one concluded ("as fast as answers can be matched"), in a window:
//! one at a time, growing (up to `BACK_TO_BACK`) while every probe is concluded by the time
//! its send returns, i.e. while the kernel carries the SYN, its answer and our RST within
//! the send call itself (loopback, namespaces: the next SYN of the flow then meets no
//! half-open connection), and back to one as soon as an answer has to be waited for. The
//! window's SYNs leave in one `sendmmsg` and their answers are read from the ring together.
//! Per-probe flows keep up to one probe in flight per reserved port.
pub mod classify;
pub mod matcher;
pub mod prober;
pub mod sockets;

#[cfg(test)]
mod prober_tests;
#[cfg(test)]
pub(crate) mod tests;

pub use crate::packet::build::{build_syn, restamp, BuildError, SynFields, V4_LEN, V6_LEN};
pub use classify::{classify, AnswerKind, Seen};
pub use matcher::Matcher;
pub use prober::{SynProber, BACK_TO_BACK, MAX_OVERLAP, PER_PROBE_PORTS};
pub use sockets::{SynIo, SynSockets};

/// How the probes of a target are spread over source ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// One source port (a constant 5-tuple) for every probe of a target.
    Constant,
    /// The next port of a reserved pool for every probe.
    PerProbe,
}
