//! The ICMP errors no probe was found for: why ([`Unmatched`]), how many ([`IcmpTally`]),
//! and the ones kept for -v ([`Ledger`]). The connection registry (`correlate::Registry`)
//! and the SYN matcher each keep one ledger.

use std::collections::VecDeque;

use super::parse::IcmpError;

/// Why an ICMP error was not attributed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmatched {
    /// It quotes no TCP header (UDP, another protocol, or too short).
    NotTcp,
    /// The quoted destination is not our target.
    OtherDestination,
    /// No ping is registered on the quoted source port (another program, or a ping that ended).
    NoSuchPing,
    /// The quoted source address is not ours (spoofed, or another host's traffic).
    OtherSource,
    /// It quotes a ping of ours that has already ended (a late copy, or a retransmission).
    Late,
    /// It quotes a ping's exact 4-tuple, but a sequence number outside what that connection
    /// has sent (forged by someone who guessed the port, or a stale connection's segment).
    OtherSequence,
    /// It quotes too little of the TCP header to tell which probe it is about (SYN probes
    /// share their 4-tuple and differ by sequence number).
    NoSequence,
}

impl Unmatched {
    pub fn as_str(self) -> &'static str {
        match self {
            Unmatched::NotTcp => "quotes no TCP segment",
            Unmatched::OtherDestination => "quotes another destination",
            Unmatched::NoSuchPing => "quotes a port of no current ping",
            Unmatched::OtherSource => "quotes another source address",
            Unmatched::Late => "quotes a ping that already ended",
            Unmatched::OtherSequence => {
                "quotes our connection with a sequence number we never sent (forged?)"
            }
            Unmatched::NoSequence => "quotes too little to tell which probe (no sequence number)",
        }
    }
}

/// ICMP errors not attributed to any probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IcmpTally {
    /// They quote none of our probes (other programs, spoofed, forged sequence numbers).
    pub unmatched: u64,
    /// They quote a probe of ours that had already ended.
    pub late: u64,
}

/// Which errors a full ledger keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// The first ones: later errors are counted, not kept.
    KeepFirst,
    /// The latest ones: the oldest kept makes room.
    KeepLatest,
}

/// Unattributed errors: every one counted (late or unmatched), and up to `cap` kept for -v
/// when asked (copies are made only then).
#[derive(Debug)]
pub struct Ledger {
    tally: IcmpTally,
    keep: bool,
    cap: usize,
    when_full: WhenFull,
    kept: VecDeque<(IcmpError, Unmatched)>,
}

impl Ledger {
    pub fn new(keep: bool, cap: usize, when_full: WhenFull) -> Ledger {
        Ledger {
            tally: IcmpTally::default(),
            keep,
            cap,
            when_full,
            kept: VecDeque::new(),
        }
    }

    /// Keep (or not) the errors for `drain`; they are counted anyway.
    pub fn set_keep(&mut self, keep: bool) {
        self.keep = keep;
    }

    /// Count `err`, not attributed because `why`, and keep a copy when asked and there is
    /// room (see `WhenFull`).
    pub fn record(&mut self, err: &IcmpError, why: Unmatched) {
        if why == Unmatched::Late {
            self.note_late();
        } else {
            self.tally.unmatched += 1;
        }
        if !self.keep || self.cap == 0 {
            return;
        }
        if self.kept.len() >= self.cap {
            match self.when_full {
                WhenFull::KeepFirst => return,
                WhenFull::KeepLatest => {
                    self.kept.pop_front();
                }
            }
        }
        self.kept.push_back((err.clone(), why));
    }

    /// Count an error that quoted a probe of ours after it ended.
    pub fn note_late(&mut self) {
        self.tally.late += 1;
    }

    pub fn tally(&self) -> IcmpTally {
        self.tally
    }

    /// Take the errors kept since the last call.
    pub fn drain(&mut self) -> Vec<(IcmpError, Unmatched)> {
        self.kept.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: u8) -> IcmpError {
        IcmpError {
            from: "10.0.0.1".parse().unwrap(),
            v6: false,
            icmp_type: 3,
            code,
            info: 0,
            quoted: None,
            quoted_proto: None,
            extensions: None,
            quote: None,
        }
    }

    #[test]
    fn a_full_ledger_keeps_the_first_or_the_latest_and_counts_every_one() {
        for when in [WhenFull::KeepFirst, WhenFull::KeepLatest] {
            let mut l = Ledger::new(true, 2, when);
            for c in 0..3 {
                l.record(&err(c), Unmatched::NotTcp);
            }
            l.record(&err(9), Unmatched::Late);
            assert_eq!(
                l.tally(),
                IcmpTally {
                    unmatched: 3,
                    late: 1
                }
            );
            let kept: Vec<u8> = l.drain().iter().map(|(e, _)| e.code).collect();
            let want = if when == WhenFull::KeepFirst {
                [0, 1]
            } else {
                [2, 9]
            };
            assert_eq!(kept, want, "{when:?}");
            assert!(l.drain().is_empty());
        }
        let mut l = Ledger::new(false, 2, WhenFull::KeepFirst);
        l.record(&err(0), Unmatched::NoSuchPing);
        assert_eq!((l.tally().unmatched, l.drain().len()), (1, 0));
    }
}
