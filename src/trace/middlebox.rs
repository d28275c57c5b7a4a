//! Middleboxes, per hop: what each router's ICMP error quotes of our SYN, compared with the
//! SYN as sent (`packet::diff`), gathered over a trace: the changes first seen at each hop,
//! how far each lasts, how much of the SYN the quotes let us check, and what the target's
//! SYN-ACK offers. No probe of its own: it reads the answers the trace gets anyway.
//!
//! The SYN as sent is built again from what made it (the source address, the probe's port and
//! sequence number, the marks): `build_syn` is deterministic, so nothing is copied per probe.
//! A NAT that translates the quote back (Linux conntrack does, for errors passing through it)
//! hides itself from every later hop: only what the quotes show is said, never guessed.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::engine::{Answer, HopDone, Outcome};
use crate::packet::build::{build_syn, mark_syn, restamp, Marks, SynFields};
use crate::packet::diff::{self, Change, Field, Headers, Quote, ECE};

/// How much of a quote a field needs.
fn needs(field: Field) -> Quote {
    match field {
        Field::Mss | Field::Wscale | Field::SackPerm | Field::Timestamps => Quote::Full,
        Field::Window | Field::Checksum | Field::EcnFlags | Field::PayloadLen => Quote::Header,
        _ => Quote::Ports,
    }
}

fn rank(q: Quote) -> u8 {
    match q {
        Quote::Ports => 0,
        Quote::Header => 1,
        Quote::Full => 2,
    }
}

/// What a hop's quotes showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HopQuotes {
    /// The most any quote held.
    pub quote: Quote,
    /// The changes (the first of each field), and the router whose quote showed it first.
    pub changes: Vec<Change>,
    pub router: Option<IpAddr>,
}

/// A change over the whole trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub change: Change,
    /// The first hop whose quote shows it, and its router.
    pub hop: u8,
    pub router: Option<IpAddr>,
    /// The last hop able to check the field shows it too (it reaches the target, as far as
    /// the quotes tell).
    pub to_target: bool,
    /// The last hop that showed it.
    pub last_hop: u8,
}

/// What the target's SYN-ACK offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_perm: bool,
    pub timestamps: bool,
    /// ECN agreed (ECE without CWR, RFC 3168), when the SYN asked for it.
    pub ecn: Option<bool>,
}

/// The middlebox report of a trace with SYN probes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Middlebox {
    /// The SYN's source address and marks; None: not SYN probes (nothing is compared).
    probe: Option<(IpAddr, Marks)>,
    pub hops: BTreeMap<u8, HopQuotes>,
    /// The first SYN-ACK's headers.
    pub syn_ack: Option<Headers>,
    /// The SYNs' size in all, when padded (`with_size`).
    size: Option<usize>,
}

/// The largest SYN built again (a jumbo frame).
const MAX_SIZE: usize = 9000;

/// Make the SYN built in `buf[..bare]` `total` bytes long in all: zeros after the TCP header,
/// the IP length field to match, checksums again (`restamp` sums the TCP segment to the
/// buffer's end). A total below the bare SYN's length keeps it bare. Returns the length.
fn pad(buf: &mut [u8], bare: usize, total: Option<usize>) -> usize {
    let Some(n) = total.map(|t| t.clamp(bare, buf.len())) else {
        return bare;
    };
    if n == bare {
        return bare;
    }
    buf[bare..n].fill(0);
    let v6 = buf[0] >> 4 == 6;
    let (at, len) = if v6 {
        (4, n - crate::packet::ip::V6_HEADER_LEN)
    } else {
        (2, n)
    };
    let Ok(len) = u16::try_from(len) else {
        return bare;
    };
    buf[at..at + 2].copy_from_slice(&len.to_be_bytes());
    let h = Headers::parse(&buf[..n]);
    let ip_id = if v6 {
        0
    } else {
        u16::from_be_bytes([buf[4], buf[5]])
    };
    let ttl = if v6 { buf[7] } else { buf[8] };
    if let Some(seq) = h.and_then(|h| h.seq) {
        restamp(&mut buf[..n], seq, ip_id, ttl);
    }
    n
}

impl Middlebox {
    /// Compare the quotes of SYN probes sent from `source` with `marks`.
    pub fn probing(source: IpAddr, marks: Marks) -> Middlebox {
        Middlebox {
            probe: Some((source, marks)),
            ..Middlebox::default()
        }
    }

    /// The same probing, nothing recorded (the live view's reset).
    pub fn reset(&self) -> Middlebox {
        Middlebox {
            probe: self.probe,
            size: self.size,
            ..Middlebox::default()
        }
    }

    pub fn on(&self) -> bool {
        self.probe.is_some()
    }

    /// The SYN of a probe as sent: built again.
    fn sent(&self, target: SocketAddr, o: &Outcome) -> Option<Headers> {
        let (source, marks) = self.probe?;
        let f = SynFields {
            src: SocketAddr::new(source, o.local_port?),
            dst: target,
            seq: o.tcp_seq?,
            ip_id: 0,
            ttl: o.hop,
        };
        let mut buf = [0u8; MAX_SIZE];
        let bare = build_syn(&mut buf, &f).ok()?;
        let n = pad(&mut buf, bare, self.size);
        mark_syn(&mut buf[..n], marks);
        Headers::parse(&buf[..n])
    }

    /// The SYNs are `total` bytes in all (`trace --size`: zeros after the TCP header), not
    /// the bare SYN: the SYN built again must be too, or its payload length and checksum
    /// would differ from every quote's.
    pub fn with_size(mut self, total: Option<usize>) -> Middlebox {
        self.size = total;
        self
    }

    /// Take one hop's verdicts of one cycle.
    pub fn record(&mut self, target: SocketAddr, done: &HopDone) {
        if self.probe.is_none() {
            return;
        }
        for o in &done.outcomes {
            let Some(seen) = o.seen else { continue };
            match o.answer {
                Answer::TimeExceeded(_) | Answer::Unreachable(_) => {}
                Answer::Reached { open: true } => {
                    self.syn_ack = self.syn_ack.or(Some(seen));
                    continue;
                }
                _ => continue,
            }
            let Some(sent) = self.sent(target, o) else {
                continue;
            };
            let changes = diff::diff(&sent, &seen);
            let hop = self.hops.entry(o.hop).or_insert(HopQuotes {
                quote: seen.quote,
                changes: Vec::new(),
                router: o.from,
            });
            if rank(seen.quote) > rank(hop.quote) {
                hop.quote = seen.quote;
            }
            for c in changes {
                if !hop.changes.iter().any(|x| x.field == c.field) {
                    hop.changes.push(c);
                }
            }
        }
    }

    /// Each change once, at the first hop that shows it, in hop order.
    pub fn changes(&self) -> Vec<Seen> {
        let mut out: Vec<Seen> = Vec::new();
        for (&hop, h) in &self.hops {
            for c in &h.changes {
                match out.iter_mut().find(|s| s.change.field == c.field) {
                    Some(s) => s.last_hop = hop,
                    None => out.push(Seen {
                        change: *c,
                        hop,
                        router: h.router,
                        to_target: false,
                        last_hop: hop,
                    }),
                }
            }
        }
        for s in &mut out {
            // The last hop whose quote could show the field.
            let last = self
                .hops
                .iter()
                .rev()
                .find(|(_, h)| rank(h.quote) >= rank(needs(s.change.field)))
                .map(|(&hop, _)| hop);
            s.to_target = last == Some(s.last_hop);
        }
        out
    }

    /// What the SYN-ACK offers (None: no SYN-ACK was seen).
    pub fn offer(&self) -> Option<Offer> {
        let h = self.syn_ack?;
        let o = h.options.unwrap_or_default();
        let asked = self.probe.is_some_and(|(_, m)| m.ecn_setup);
        Some(Offer {
            mss: o.mss,
            wscale: o.window_scale,
            sack_perm: o.sack_permitted,
            timestamps: o.timestamps.is_some(),
            ecn: asked.then(|| h.ecn_flags() == Some(ECE)),
        })
    }

    /// The lines of the report: a hop's new changes (`hop 3 (10.80.3.2): MSS 1460 → 1400
    /// (clamped)`), hops whose quotes are too short, the SYN-ACK, and the summary line.
    pub fn lines(&self, addr: &mut dyn FnMut(IpAddr) -> String) -> Vec<String> {
        if !self.on() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let all = self.changes();
        for (&hop, h) in &self.hops {
            let who = h
                .router
                .map(|a| format!(" ({})", addr(a)))
                .unwrap_or_default();
            let new: Vec<Change> = all
                .iter()
                .filter(|s| s.hop == hop)
                .map(|s| s.change)
                .collect();
            let mut words = diff::describe_all(&new);
            if h.quote != Quote::Full {
                words.push("quote too short to check options".into());
            }
            if !words.is_empty() {
                out.push(format!("hop {hop}{who}: {}", words.join("; ")));
            }
        }
        if let Some(o) = self.offer() {
            out.push(self.offer_line(&o, &all));
        }
        out.push(self.summary(&all));
        out
    }

    fn offer_line(&self, o: &Offer, all: &[Seen]) -> String {
        let mut what = Vec::new();
        if let Some(m) = o.mss {
            what.push(format!("MSS {m}"));
        }
        if let Some(s) = o.wscale {
            what.push(format!("window scale {s}"));
        }
        if o.sack_perm {
            what.push("SACK-permitted".into());
        }
        if o.timestamps {
            what.push("timestamps".into());
        }
        match o.ecn {
            Some(true) => what.push("ECN agreed".into()),
            Some(false) => what.push("ECN not agreed".into()),
            None => {}
        }
        if what.is_empty() {
            what.push("no options".into());
        }
        let mut line = format!("target's SYN-ACK offers {}", what.join(", "));
        // What the SYN that arrived said, where a middlebox changed it.
        let mut notes = Vec::new();
        for s in all.iter().filter(|s| s.to_target) {
            let arrived = s.change.seen;
            let note = match (s.change.field, arrived) {
                (Field::Mss, diff::Value::Num(m)) => Some(format!(
                    "the SYN arrived with MSS {m} (changed at hop {})",
                    s.hop
                )),
                (Field::SackPerm | Field::Timestamps | Field::Wscale, diff::Value::Absent) => {
                    Some(format!(
                        "the SYN arrived without {} (removed at hop {})",
                        s.change.field.words(),
                        s.hop
                    ))
                }
                (Field::EcnFlags, _) => Some(format!(
                    "the SYN arrived without ECN setup (cleared at hop {})",
                    s.hop
                )),
                _ => None,
            };
            notes.extend(note);
        }
        if !notes.is_empty() {
            line.push_str(&format!(": {}", notes.join("; ")));
        }
        line
    }

    fn summary(&self, all: &[Seen]) -> String {
        if self.hops.is_empty() {
            return "middleboxes: no router quoted the SYN: nothing to compare".into();
        }
        if all.is_empty() {
            let short: Vec<String> = self
                .hops
                .iter()
                .filter(|(_, h)| h.quote != Quote::Full)
                .map(|(hop, _)| hop.to_string())
                .collect();
            let hops: Vec<&u8> = self.hops.keys().collect();
            let span = match (hops.first(), hops.last()) {
                (Some(a), Some(b)) if a != b => format!("hops {a} to {b}"),
                (Some(a), _) => format!("hop {a}"),
                _ => String::new(),
            };
            let mut s =
                format!("middleboxes: none seen: the SYN's quotes ({span}) match what was sent");
            if !short.is_empty() {
                s.push_str(&format!(
                    "; hop{} {}: quote too short to check options",
                    if short.len() == 1 { "" } else { "s" },
                    short.join(", ")
                ));
            }
            return s;
        }
        let parts: Vec<String> = all
            .iter()
            .map(|s| {
                let w = diff::describe_all(&[s.change]).join("; ");
                let who = s.router.map(|a| format!(" ({a})")).unwrap_or_default();
                let between = match s.hop {
                    1 => "between us and hop 1".to_string(),
                    h => format!("between hop {} and hop {h}", h - 1),
                };
                let reach = if s.to_target {
                    "and lasts to the target".to_string()
                } else {
                    format!("gone again after hop {}", s.last_hop)
                };
                format!(
                    "{w}: first seen at hop {}{who}, changed {between}, {reach}",
                    s.hop
                )
            })
            .collect();
        format!("middleboxes: {}", parts.join("; "))
    }
}

#[cfg(test)]
#[path = "middlebox_tests.rs"]
mod tests;
