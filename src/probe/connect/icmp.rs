//! ICMP hand-over: an error the kernel reported (error queue, or a failed socket call)
//! waits a moment for the raw socket's copy and the listener's attribution, then becomes
//! the verdict of the ping, or of every ping on a persistent connection.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

use mio::Token;

use super::flight::Stage;
use super::pipe::p_attributed_lately;
use super::socket::queued_error;
use super::{ConnectProber, RAW_GRACE};
use crate::icmp::recverr::{read_error_queue_id, ErrEntry, QueuedError};
use crate::icmp::{IcmpReport, Phase};
use crate::net::describe_io;
use crate::probe::Status;
use crate::timing;

/// What to do about a failure.
pub(super) enum Verdict {
    Now(Status),
    /// An ICMP error the kernel reported: wait a moment for the raw socket's copy, then
    /// conclude with this status (in this phase).
    AwaitRaw(Status, Phase),
}

/// Whether an open connection's errno is one an ICMP error sets (Linux's icmp_err_convert:
/// unreachable codes, time exceeded, parameter problem, fragmentation needed).
fn icmp_errno(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::ECONNREFUSED
                | libc::ENOPROTOOPT
                | libc::EMSGSIZE
                | libc::EOPNOTSUPP
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EPROTO
        )
    )
}

impl ConnectProber {
    /// The error queue of a ping waiting for its echo: its transmit timestamp, or an ICMP
    /// error about it.
    pub(super) fn on_error_queue(&mut self, tok: Token) {
        let Some(f) = self.flights.get_mut(&tok) else {
            return;
        };
        let Stage::Echo { tx, .. } = &mut f.stage else {
            return;
        };
        let fd = f.conn.sock.as_raw_fd();
        if let Some(q) = queued_error(fd, tx) {
            if let Some(st) = self.recverr_status(tok, &q, Phase::Echo) {
                self.settle(tok, st);
            }
        } else if let Ok(Some(e)) = f.conn.sock.take_error() {
            // An error with nothing queued (an ICMP error on an open connection sets only
            // the errno): the same verdict as when a read meets it.
            let v = self.socket_error(tok, e, Phase::Echo);
            self.settle(tok, v);
        }
    }

    /// An ICMP error from the kernel's error queue, as a verdict. When raw capture is on,
    /// the raw socket already holds its copy of the same error (the kernel delivers to raw
    /// sockets before TCP): the listener's attribution is awaited a moment (`AwaitRaw`), so
    /// one error is reported once, from the raw socket, and never counted again as someone
    /// else's. None: not an ICMP error.
    pub(super) fn recverr_status(
        &mut self,
        tok: Token,
        q: &QueuedError,
        phase: Phase,
    ) -> Option<Verdict> {
        if !q.is_icmp() {
            return None;
        }
        let f = self.flights.get(&tok)?;
        if let Some(rep) = self.registry.report(f.conn.local.port()) {
            return Some(Verdict::Now(Status::Icmp(rep)));
        }
        let report = q.report(f.spec.target.ip(), f.start.elapsed(), phase);
        Some(if self.raw_capture {
            Verdict::AwaitRaw(Status::Icmp(report), phase)
        } else {
            Verdict::Now(Status::Icmp(report))
        })
    }

    /// A failed socket: attribute it to the ICMP error behind it when there is one.
    pub(super) fn socket_error(&mut self, tok: Token, err: io::Error, phase: Phase) -> Verdict {
        let Some(f) = self.flights.get(&tok) else {
            return Verdict::Now(Status::Error(describe_io(&err)));
        };
        if let Some(rep) = self.registry.report(f.conn.local.port()) {
            return Verdict::Now(Status::Icmp(rep));
        }
        let mut tx = None;
        let fd = f.conn.sock.as_raw_fd();
        if let Some(v) = queued_error(fd, &mut tx).and_then(|q| self.recverr_status(tok, &q, phase))
        {
            return v;
        }
        // On an open connection Linux turns an ICMP error into the socket's errno and queues
        // nothing (tcp_v4_err calls ip_icmp_error only while connecting): the raw socket's
        // copy, which names the router, is on its way; wait for it as for a queued error.
        if self.raw_capture && phase == Phase::Echo && icmp_errno(&err) {
            return Verdict::AwaitRaw(Status::Error(describe_io(&err)), phase);
        }
        Verdict::Now(if err.kind() == io::ErrorKind::ConnectionRefused {
            Status::Refused
        } else {
            Status::Error(describe_io(&err))
        })
    }

    /// Pings whose report the ICMP listener just attributed.
    pub(super) fn take_attributed(&mut self) {
        for port in self.registry.take_attributed() {
            let Some(&tok) = self.by_port.get(&port) else {
                continue;
            };
            if self.pipes.contains_key(&tok) {
                self.pipe_attributed(tok, port);
                continue;
            }
            if let Some(rep) = self.registry.report(port) {
                self.conclude(tok, Status::Icmp(rep));
            }
        }
    }

    /// An ICMP report, moved to count from the start of the ping it concludes.
    fn report_for(report: &IcmpReport, registered: Instant, start: Instant) -> IcmpReport {
        let mut r = report.clone();
        r.after = (registered + report.after).saturating_duration_since(start);
        r.phase = Phase::Echo;
        r
    }

    /// A receive failed (`e`). An ICMP error the kernel reported on a connection it keeps
    /// concludes the ping it is about (see `pipe_attributed`; without raw capture the error
    /// queue already gave it to the oldest ping waiting). A connection that is over (reset,
    /// or an error that ended it) concludes every ping on it, with the ICMP error behind
    /// the failure when there is one.
    ///
    /// The kernel delivers an ICMP error to raw sockets before TCP, but the listener thread
    /// may not have attributed its copy yet: then the failure waits for it (`Pipe::failed`),
    /// at most [`RAW_GRACE`], without holding up the event loop.
    pub(super) fn pipe_failed(&mut self, tok: Token, e: io::Error) {
        let Some(p) = self.pipes.get_mut(&tok) else {
            return;
        };
        if p.failed.is_some() {
            return; // already waiting for the raw copy
        }
        let port = p.conn.local.port();
        let report = self.registry.take_report(port);
        if report.is_none() && self.raw_capture && icmp_errno(&e) {
            p.failed = Some((describe_io(&e), Instant::now() + RAW_GRACE));
            return;
        }
        self.pipe_failed_with(tok, report, describe_io(&e));
    }

    /// A pending receive failure whose raw copy was attributed (`report`) or whose wait ran
    /// out (None).
    pub(super) fn pipe_failed_settle(&mut self, tok: Token) {
        let Some(p) = self.pipes.get_mut(&tok) else {
            return;
        };
        let Some((words, _)) = p.failed.take() else {
            return;
        };
        let port = p.conn.local.port();
        let report = self.registry.take_report(port);
        self.pipe_failed_with(tok, report, words);
    }

    /// A receive failed (the errno in `words`), with the listener's report when it has one.
    fn pipe_failed_with(
        &mut self,
        tok: Token,
        report: Option<(IcmpReport, Option<u32>)>,
        words: String,
    ) {
        let Some(p) = self.pipes.get(&tok) else {
            return;
        };
        let registered = p.registered;
        let target = p.target;
        let fd = p.conn.sock.as_raw_fd();
        if timing::tcp_established(fd) {
            match report {
                Some((r, quoted)) => self.pipe_attribute(tok, r, quoted),
                // The raw copy was attributed already (by the listener's wake-up) ...
                None if p_attributed_lately(self.pipes.get(&tok)) => {}
                // ... or there is none (no capture; Linux queues nothing for an open
                // connection): the errno, for the oldest ping waiting.
                None => {
                    let oldest = self
                        .pipes
                        .get(&tok)
                        .and_then(|p| p.reqs.iter().position(|r| r.ping.is_some()));
                    if let Some(i) = oldest {
                        self.pipe_conclude(tok, i, Status::Error(words), None);
                    }
                }
            }
            return;
        }
        let report = match report {
            Some((r, _)) => Some(r),
            None => {
                let mut tx = None;
                queued_error(fd, &mut tx)
                    .filter(QueuedError::is_icmp)
                    .map(|q| q.report(target.ip(), registered.elapsed(), Phase::Echo))
            }
        };
        match report {
            Some(r) => self.close_pipe(tok, |start| {
                Status::Icmp(Self::report_for(&r, registered, start))
            }),
            None => self.close_pipe(tok, |_| Status::Error(words.clone())),
        }
    }

    /// The pipe's error queue: transmit timestamps (matched to requests by id) and ICMP
    /// errors (without raw capture: about the oldest request waiting; with it, the raw
    /// copy of the same error is attributed by its quoted sequence number instead).
    pub(super) fn pipe_error_queue(&mut self, tok: Token) {
        let Some(p) = self.pipes.get_mut(&tok) else {
            return;
        };
        let fd = p.conn.sock.as_raw_fd();
        let mut icmp = None;
        while let Ok(Some((entry, id))) = read_error_queue_id(fd) {
            match entry {
                ErrEntry::TxTimestamp(t) => {
                    if !p.ids {
                        continue;
                    }
                    let last = u64::from(id);
                    // Ids wrap at 2^32 bytes: compare the low bits.
                    if let Some(r) = p
                        .reqs
                        .iter_mut()
                        .find(|r| r.hi > r.lo && ((r.hi - 1) & 0xffff_ffff) == last)
                    {
                        r.tx.get_or_insert(t);
                    }
                }
                ErrEntry::Error(q) if q.is_icmp() && icmp.is_none() => icmp = Some(q),
                ErrEntry::Error(_) => {}
            }
        }
        let Some(q) = icmp else {
            return;
        };
        if self.raw_capture {
            return;
        }
        let Some(i) = p.reqs.iter().position(|r| r.ping.is_some()) else {
            self.registry.note_late();
            return;
        };
        let start = p.reqs[i].ping.as_ref().map_or(p.registered, |g| g.start);
        let report = q.report(p.target.ip(), start.elapsed(), Phase::Echo);
        self.pipe_conclude(tok, i, Status::Icmp(report), None);
    }

    /// The ICMP listener attributed an error to the pipe's connection: it concludes the ping
    /// whose bytes it quotes (the oldest waiting when the quote cannot tell); an error about
    /// a ping already concluded is late.
    fn pipe_attributed(&mut self, tok: Token, port: u16) {
        if self.pipes.get(&tok).is_some_and(|p| p.failed.is_some()) {
            // The copy a pending receive failure was waiting for.
            self.pipe_failed_settle(tok);
            return;
        }
        if let Some((report, quoted)) = self.registry.take_report(port) {
            self.pipe_attribute(tok, report, quoted);
        }
    }

    /// Conclude the ping whose request bytes an ICMP error quotes (`quoted`: offset from the
    /// ISN; None: the oldest ping waiting); late when that ping has ended.
    fn pipe_attribute(&mut self, tok: Token, report: IcmpReport, quoted: Option<u32>) {
        let Some(p) = self.pipes.get_mut(&tok) else {
            return;
        };
        p.attributed_at = Some(Instant::now());
        let p = &*p;
        let i = match quoted {
            // Offset 0 is the SYN; data byte b is at offset b + 1. A quote of the next byte
            // to send (Linux accepts it too) is the last request's.
            Some(0) => None,
            Some(off) => {
                // Sequence numbers wrap at 2^32 bytes: compare offsets modulo 2^32.
                let b = off - 1;
                let from = |at: u64| b.wrapping_sub(at as u32);
                p.reqs
                    .iter()
                    .position(|r| u64::from(from(r.lo)) < r.hi - r.lo)
                    .or_else(|| {
                        p.reqs
                            .back()
                            .filter(|r| r.hi == p.conn.sent && from(r.hi) == 0)
                            .map(|_| p.reqs.len() - 1)
                    })
            }
            None => p.reqs.iter().position(|r| r.ping.is_some()),
        };
        let ping = i.and_then(|i| p.reqs[i].ping.as_ref().map(|g| (i, g.start)));
        let Some((i, start)) = ping else {
            self.registry.note_late();
            return;
        };
        let r = Self::report_for(&report, p.registered, start);
        self.pipe_conclude(tok, i, Status::Icmp(r), None);
    }
}
