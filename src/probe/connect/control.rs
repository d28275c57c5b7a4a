//! The control ping: when a large request (`-s` above [`SMALL`]) gets no echo within the
//! timeout, on its own connection, with no ICMP error, a ping of [`SMALL`] bytes goes to the
//! same target on a new connection. The large ping's verdict (a timeout) waits for it (at
//! most one more timeout); when the small one is echoed, the large one carries
//! [`Notice::BlackHole`]: segments of that size vanish where small ones pass, and nothing
//! said "packet too big" (such an error would have ended the ping). Said once per target;
//! a target found so sends no more controls. A small control that times out too says
//! nothing about the MTU (the path or the server is down): the ping stays a plain timeout.
//! On a persistent connection (`--persistent`) the control goes on a connection of its own
//! (the stalled one holds every later request), one at a time per connection
//! ([`ConnectProber::start_pipe_control`]).

use std::os::fd::AsRawFd;
use std::time::Instant;

use mio::Token;

use super::echo::Speaks;
use super::flight::{ControlOf, Stage};
use super::size::{self, SMALL};
use super::ConnectProber;
use crate::probe::{Mode, Notice, ProbeSpec, Status};

impl ConnectProber {
    /// A ping about to time out: start its control ping instead, when it is a large
    /// request waiting for its echo. True: its verdict now waits for the control's.
    pub(super) fn start_control(&mut self, tok: Token) -> bool {
        let Some(f) = self.flights.get(&tok) else {
            return false;
        };
        let large = f.size.is_some_and(|s| s > SMALL);
        if !large
            || f.control_of.is_some()
            || self.mode == Mode::Persistent
            || !matches!(f.stage, Stage::Echo { .. })
            || self.black_holes.contains(&f.spec.target)
        {
            return false;
        }
        let spec = f.spec;
        let Some(ctl) = self.begin_flight(spec, Some(SMALL), Some(ControlOf::Ping(tok))) else {
            return false;
        };
        if !self.flights.contains_key(&ctl) {
            // Concluded at once (refused, an error): `control_done` has ended the ping.
            return true;
        }
        let Some(f) = self.flights.get_mut(&tok) else {
            return true;
        };
        f.stage = Stage::AwaitControl;
        // Its own deadline after the control's (queued after it): the control decides.
        f.deadline = Instant::now() + self.timeout;
        self.deadlines.push_back((f.deadline, tok));
        true
    }

    /// Whether ping `tok`'s request did not fit the path as sent: the kernel's path MTU
    /// for its connection is now below the request's segment (a "packet too big" came).
    pub(super) fn shrunk(&self, tok: Token) -> bool {
        let Some(f) = self.flights.get(&tok) else {
            return false;
        };
        let Some(size) = f.size.filter(|&s| s > SMALL) else {
            return false;
        };
        let v6 = f.spec.target.is_ipv6();
        size::path_mtu(f.conn.sock.as_raw_fd(), v6).is_some_and(|m| m < size::on_wire(size, v6))
    }

    /// The control ping of `parent` concluded with `status`: the parent's verdict.
    pub(super) fn control_done(&mut self, parent: Token, status: &Status) {
        let Some(f) = self.flights.get_mut(&parent) else {
            return;
        };
        if !matches!(f.stage, Stage::AwaitControl) {
            // Concluded at once, before the parent waited: it still waits in Echo.
            f.stage = Stage::AwaitControl;
        }
        let target = f.spec.target;
        if *status == Status::Reply {
            f.result.notice = Some(Notice::BlackHole {
                size: f.size.unwrap_or(SMALL),
                small: SMALL,
            });
            self.black_holes.insert(target);
            if self.fallback {
                self.speaks.insert(target, Speaks::Echo);
            }
        } else if self.fallback && !self.speaks.contains_key(&target) {
            self.speaks.insert(target, Speaks::Hinted);
            f.result.notice = Some(Notice::NoEcho);
        }
        self.conclude(parent, Status::Timeout);
    }

    /// A ping on a persistent connection about to time out (request `i` of pipe `pipe`):
    /// start a control ping of [`SMALL`] bytes on a connection of its own, when its request
    /// is large and no control for the target is out. The persistent connection stalls on
    /// the large segment (every later request waits behind it), so the control cannot go
    /// there. True: the ping's verdict now waits for the control's.
    pub(super) fn start_pipe_control(&mut self, pipe: Token, i: usize) -> bool {
        if self.shape.size.is_none_or(|s| s <= SMALL) {
            return false;
        }
        let Some(p) = self.pipes.get(&pipe) else {
            return false;
        };
        let target = p.target;
        let Some(req) = p.reqs.get(i) else {
            return false;
        };
        let seq = req.seq;
        if self.black_holes.contains(&target)
            || req.ping.as_ref().is_none_or(|g| g.awaiting_control)
        {
            return false;
        }
        let out = self
            .flights
            .values()
            .any(|f| matches!(f.control_of, Some(ControlOf::Piped(t, _)) if t == pipe));
        // Its verdict waits for the control (a later ping stalled behind the same segment
        // waits for the one out, so that the pings end in their order). A backstop: the
        // control's own timeout ends it first, and this ping with it.
        let until = Instant::now() + 2 * self.timeout;
        let mark = |this: &mut Self, on: bool| {
            if let Some(g) = this
                .pipes
                .get_mut(&pipe)
                .and_then(|p| p.reqs.get_mut(i))
                .and_then(|r| r.ping.as_mut())
            {
                g.awaiting_control = on;
                if on {
                    g.deadline = until;
                }
            }
        };
        mark(self, true);
        if out {
            return true;
        }
        let spec = ProbeSpec {
            seq,
            target,
            ttl: None,
            flow: 0,
        };
        // A control that concludes at once (refused) has ended the ping already.
        if self
            .begin_flight(spec, Some(SMALL), Some(ControlOf::Piped(pipe, seq)))
            .is_none()
        {
            // No control (its socket did not open): a plain timeout.
            mark(self, false);
            return false;
        }
        true
    }

    /// The control ping for ping `seq` on pipe `pipe` concluded with `status`: the verdicts
    /// of that ping and of the later ones that waited for it, in order, timeouts, the first
    /// with the black hole notice when the small ping was echoed.
    pub(super) fn pipe_control_done(&mut self, pipe: Token, seq: u64, status: &Status) {
        let size = self.shape.size.unwrap_or(SMALL);
        let Some(p) = self.pipes.get_mut(&pipe) else {
            return;
        };
        let target = p.target;
        if *status == Status::Reply {
            if let Some(g) = p
                .reqs
                .iter_mut()
                .find(|r| r.seq == seq)
                .and_then(|r| r.ping.as_mut())
            {
                g.result.notice = Some(Notice::BlackHole { size, small: SMALL });
            }
            self.black_holes.insert(target);
        }
        let waiting: Vec<usize> = p
            .reqs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.ping.as_ref().is_some_and(|g| g.awaiting_control))
            .map(|(i, _)| i)
            .collect();
        for i in waiting {
            self.pipe_conclude(pipe, i, Status::Timeout, None);
        }
    }
}
