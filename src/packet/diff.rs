//! What a middlebox did to our SYN: the headers of a packet read into [`Headers`] (the SYN as
//! we sent it, or as a router quotes it in an ICMP error, as far as the quote goes), and
//! [`diff`] of the two, field by field (tracebox's idea: Detal et al., "Revealing Middlebox
//! Interference with Tracebox", IMC 2013).
//!
//! A quote holds what the router received: RFC 792 guarantees the IP header and 8 bytes of
//! TCP (ports and sequence number), RFC 1812 routers and Linux quote up to 576 bytes (ICMPv4)
//! or 1280 (ICMPv6): our whole SYN. What the quote does not reach is not compared: a field
//! is a change only when both sides hold it ([`Quote`] says how far the quote went).
//! Pure and allocation-free except the list [`diff`] returns; never panics.

use std::fmt;
use std::net::IpAddr;

use super::ip::{self, Ip};
use super::tcp::{Flags, TcpOptions, TcpPrefix};

/// The TCP flags of ECN setup (RFC 3168): ECE and CWR.
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;
/// The ECN field: the low two bits of the IPv4 TOS byte or IPv6 traffic class.
pub const ECN_MASK: u8 = 0x03;

/// How much of the TCP header a quote holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quote {
    /// The whole header, options included.
    Full,
    /// The fixed 20 bytes (window, flags, checksum), not every option.
    Header,
    /// Less than 20 bytes: the ports and (from 8 bytes) the sequence number.
    Ports,
}

impl Quote {
    pub fn as_str(self) -> &'static str {
        match self {
            Quote::Full => "full",
            Quote::Header => "header",
            Quote::Ports => "ports",
        }
    }
}

/// The headers of a TCP packet as far as the bytes go: every field a middlebox may rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// The IPv4 TOS byte or IPv6 traffic class: DSCP (high six bits) and ECN (low two).
    pub tos: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: Option<u32>,
    /// Flags, window and checksum: with the fixed header (quote `Header` or `Full`).
    pub flags: Option<u8>,
    pub window: Option<u16>,
    pub checksum: Option<u16>,
    /// The options: with the whole header (quote `Full`).
    pub options: Option<TcpOptions>,
    /// Bytes after the TCP header, from the IP length fields and the data offset.
    pub payload_len: Option<u16>,
    pub quote: Quote,
}

/// The IPv4 total length and IPv6 payload length fields.
const V4_TOTAL_LEN: std::ops::Range<usize> = 2..4;
const V6_PAYLOAD_LEN: std::ops::Range<usize> = 4..6;

fn u16_at(b: &[u8], r: std::ops::Range<usize>) -> Option<u16> {
    let s = b.get(r)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

impl Headers {
    /// Read a TCP packet from its IP header on (a packet we built, or the quote in an ICMP
    /// error). None: not IP, not TCP, a later fragment, or shorter than the TCP ports.
    pub fn parse(buf: &[u8]) -> Option<Headers> {
        let ip = Ip::parse(buf)?;
        if ip.protocol() != ip::proto::TCP || ip.later_fragment() {
            return None;
        }
        let (tos, ip_payload_len) = if ip.is_v6() {
            let tc = (buf.first()? & 0x0f) << 4 | buf.get(1)? >> 4;
            let len = u16_at(buf, V6_PAYLOAD_LEN)?;
            // The payload length counts the extension headers too.
            let ext = ip.header_len() - ip::V6_HEADER_LEN;
            (tc, usize::from(len).checked_sub(ext))
        } else {
            let len = u16_at(buf, V4_TOTAL_LEN)?;
            (*buf.get(1)?, usize::from(len).checked_sub(ip.header_len()))
        };
        let t = TcpPrefix::new_checked(ip.payload())?;
        let fixed = ip.payload().len() >= super::tcp::HEADER_LEN;
        let whole = t.whole();
        let quote = match (&whole, fixed) {
            (Some(_), _) => Quote::Full,
            (None, true) => Quote::Header,
            (None, false) => Quote::Ports,
        };
        let b = ip.payload();
        let field = |r: std::ops::Range<usize>| if fixed { u16_at(b, r) } else { None };
        let data_offset = fixed.then(|| usize::from(b[super::tcp::field::DATA_OFFSET] >> 4) * 4);
        Some(Headers {
            tos,
            src: ip.src(),
            dst: ip.dst(),
            sport: t.src_port(),
            dport: t.dst_port(),
            seq: t.seq(),
            flags: t.flags().filter(|_| fixed).map(|f| f.0),
            window: field(super::tcp::field::WINDOW),
            checksum: field(super::tcp::field::CHECKSUM),
            options: whole.map(|w| TcpOptions::parse(w.option_bytes())),
            payload_len: match (ip_payload_len, data_offset) {
                (Some(len), Some(off)) => len.checked_sub(off).and_then(|n| u16::try_from(n).ok()),
                _ => None,
            },
            quote,
        })
    }

    pub fn dscp(&self) -> u8 {
        self.tos >> 2
    }

    pub fn ecn(&self) -> u8 {
        self.tos & ECN_MASK
    }

    /// The ECN-setup flags (ECE, CWR) when the flags are quoted.
    pub fn ecn_flags(&self) -> Option<u8> {
        self.flags.map(|f| f & (ECE | CWR))
    }

    /// Whether it is a SYN (None: the flags are not quoted).
    pub fn syn(&self) -> Option<bool> {
        self.flags.map(|f| Flags(f).syn())
    }
}

/// A field a middlebox changed (the names of the JSON's `changes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Dscp,
    /// The IP ECN codepoint.
    Ecn,
    /// The TCP ECN-setup flags (ECE, CWR): named `ecn` too, with values `ECE+CWR` / `none`.
    EcnFlags,
    Src,
    Dst,
    Sport,
    Dport,
    Seq,
    Window,
    Mss,
    Wscale,
    SackPerm,
    Timestamps,
    Checksum,
    PayloadLen,
}

impl Field {
    /// Its name in words: `MSS`, `SACK-permitted`, `source port`.
    pub fn words(self) -> &'static str {
        match self {
            Field::Dscp => "DSCP",
            Field::Ecn => "ECN codepoint",
            Field::EcnFlags => "ECN-setup flags",
            Field::Src => "source",
            Field::Dst => "destination",
            Field::Sport => "source port",
            Field::Dport => "destination port",
            Field::Seq => "sequence number",
            Field::Window => "window",
            Field::Mss => "MSS",
            Field::Wscale => "window scale",
            Field::SackPerm => "SACK-permitted",
            Field::Timestamps => "timestamps",
            Field::Checksum => "TCP checksum",
            Field::PayloadLen => "payload length",
        }
    }

    /// Its name in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Dscp => "dscp",
            Field::Ecn | Field::EcnFlags => "ecn",
            Field::Src => "src",
            Field::Dst => "dst",
            Field::Sport => "sport",
            Field::Dport => "dport",
            Field::Seq => "seq",
            Field::Window => "window",
            Field::Mss => "mss",
            Field::Wscale => "wscale",
            Field::SackPerm => "sack_perm",
            Field::Timestamps => "timestamps",
            Field::Checksum => "checksum",
            Field::PayloadLen => "payload_len",
        }
    }
}

/// A field's value, sent or seen; `Absent` for an option not there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    Absent,
    Num(u32),
    Addr(IpAddr),
    /// A checksum, written in hex.
    Hex(u16),
    /// An option present without a value (SACK-permitted).
    Present,
    /// The timestamps option: (value, echo reply).
    Ts(u32, u32),
    /// The ECN codepoint of IP.
    Codepoint(u8),
    /// The ECN-setup flags of TCP.
    EcnFlags(u8),
}

impl Value {
    /// The JSON's string (None: `null`, absent).
    pub fn json(&self) -> Option<String> {
        match self {
            Value::Absent => None,
            v => Some(v.to_string()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::Absent => f.write_str("absent"),
            Value::Num(n) => write!(f, "{n}"),
            Value::Addr(a) => write!(f, "{a}"),
            Value::Hex(h) => write!(f, "0x{h:04x}"),
            Value::Present => f.write_str("present"),
            Value::Ts(v, e) => write!(f, "{v},{e}"),
            Value::Codepoint(c) => f.write_str(match c & ECN_MASK {
                0 => "not-ECT",
                1 => "ECT(1)",
                2 => "ECT(0)",
                _ => "CE",
            }),
            Value::EcnFlags(fl) => f.write_str(match (fl & ECE != 0, fl & CWR != 0) {
                (true, true) => "ECE+CWR",
                (true, false) => "ECE",
                (false, true) => "CWR",
                (false, false) => "none",
            }),
        }
    }
}

/// One field changed between the SYN sent and what a router received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    pub field: Field,
    pub sent: Value,
    pub seen: Value,
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> Value) -> Value {
    v.map_or(Value::Absent, f)
}

fn push_change(out: &mut Vec<Change>, field: Field, sent: Value, seen: Value) {
    if sent != seen {
        out.push(Change { field, sent, seen });
    }
}

/// The fields of `seen` (a quote) that differ from `sent` (the SYN as built), in the order of
/// [`Field`]. Only what both hold is compared: the options only with a `Full` quote, window
/// and flags with the fixed header. The checksum is a change only when nothing else the
/// checksum covers changed (else it follows from those changes).
pub fn diff(sent: &Headers, seen: &Headers) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |field, a: Value, b: Value| push_change(&mut out, field, a, b);
    push(
        Field::Dscp,
        Value::Num(sent.dscp().into()),
        Value::Num(seen.dscp().into()),
    );
    push(
        Field::Ecn,
        Value::Codepoint(sent.ecn()),
        Value::Codepoint(seen.ecn()),
    );
    if let (Some(a), Some(b)) = (sent.ecn_flags(), seen.ecn_flags()) {
        push(Field::EcnFlags, Value::EcnFlags(a), Value::EcnFlags(b));
    }
    push(Field::Src, Value::Addr(sent.src), Value::Addr(seen.src));
    push(Field::Dst, Value::Addr(sent.dst), Value::Addr(seen.dst));
    push(
        Field::Sport,
        Value::Num(sent.sport.into()),
        Value::Num(seen.sport.into()),
    );
    push(
        Field::Dport,
        Value::Num(sent.dport.into()),
        Value::Num(seen.dport.into()),
    );
    if let (Some(a), Some(b)) = (sent.seq, seen.seq) {
        push(Field::Seq, Value::Num(a), Value::Num(b));
    }
    if let (Some(a), Some(b)) = (sent.window, seen.window) {
        push(Field::Window, Value::Num(a.into()), Value::Num(b.into()));
    }
    if let (Some(a), Some(b)) = (sent.options, seen.options) {
        push(
            Field::Mss,
            opt(a.mss, |m| Value::Num(m.into())),
            opt(b.mss, |m| Value::Num(m.into())),
        );
        push(
            Field::Wscale,
            opt(a.window_scale, |s| Value::Num(s.into())),
            opt(b.window_scale, |s| Value::Num(s.into())),
        );
        let sack = |s: bool| if s { Value::Present } else { Value::Absent };
        push(
            Field::SackPerm,
            sack(a.sack_permitted),
            sack(b.sack_permitted),
        );
        push(
            Field::Timestamps,
            opt(a.timestamps, |(v, e)| Value::Ts(v, e)),
            opt(b.timestamps, |(v, e)| Value::Ts(v, e)),
        );
    }
    if let (Some(a), Some(b)) = (sent.payload_len, seen.payload_len) {
        push(
            Field::PayloadLen,
            Value::Num(a.into()),
            Value::Num(b.into()),
        );
    }
    // The checksum covers every TCP field and the addresses, not the IP TOS byte.
    let covered = out
        .iter()
        .any(|c| !matches!(c.field, Field::Dscp | Field::Ecn));
    if !covered {
        if let (Some(a), Some(b)) = (sent.checksum, seen.checksum) {
            push_change(&mut out, Field::Checksum, Value::Hex(a), Value::Hex(b));
        }
    }
    out
}

/// One change in words, as a hop's line says it: `MSS 1460 → 1400 (clamped)`,
/// `ECN bits cleared`, `SACK-permitted removed`.
pub fn describe(c: &Change) -> String {
    use Value::*;
    let what = c.field.words();
    match (c.field, c.sent, c.seen) {
        (Field::Ecn, Codepoint(_), Codepoint(0)) | (Field::EcnFlags, EcnFlags(_), EcnFlags(0)) => {
            format!("ECN bits cleared ({what} {} → {})", c.sent, c.seen)
        }
        (Field::Dscp, _, _) => format!("{what} {} → {} (remarked)", c.sent, c.seen),
        (Field::Mss, Num(a), Num(b)) if b < a => format!("{what} {a} → {b} (clamped)"),
        (Field::Seq, _, _) => format!("{what} {} → {} (rewritten)", c.sent, c.seen),
        (Field::Checksum, _, _) => format!(
            "{what} {} → {} (nothing else quoted changed)",
            c.sent, c.seen
        ),
        (_, Absent, b) if b != Absent => match b {
            Present => format!("{what} added"),
            _ => format!("{what} {b} added"),
        },
        (_, _, Absent) => format!("{what} removed"),
        _ => format!("{what} {} → {}", c.sent, c.seen),
    }
}

/// A hop's changes in words, the address and port of a NAT said together:
/// `source 10.78.1.2:40001 → 10.78.2.2:61000 (NAT)`.
pub fn describe_all(changes: &[Change]) -> Vec<String> {
    let mut words = Vec::new();
    let find = |f: Field| changes.iter().find(|c| c.field == f);
    for (addr, port, name) in [
        (Field::Src, Field::Sport, "source"),
        (Field::Dst, Field::Dport, "destination"),
    ] {
        let both = |a: Value, p: Value| match a {
            Value::Addr(IpAddr::V6(v6)) => format!("[{v6}]:{p}"),
            a => format!("{a}:{p}"),
        };
        match (find(addr), find(port)) {
            (Some(a), Some(p)) => words.push(format!(
                "{name} {} → {} (NAT)",
                both(a.sent, p.sent),
                both(a.seen, p.seen)
            )),
            (Some(c), None) => words.push(format!("{name} {} → {} (NAT)", c.sent, c.seen)),
            (None, Some(c)) => words.push(format!("{name} port {} → {} (NAT)", c.sent, c.seen)),
            (None, None) => {}
        }
    }
    for c in changes {
        if !matches!(
            c.field,
            Field::Src | Field::Dst | Field::Sport | Field::Dport
        ) {
            words.push(describe(c));
        }
    }
    words
}

#[cfg(test)]
#[path = "diff_tests.rs"]
pub(crate) mod tests;
