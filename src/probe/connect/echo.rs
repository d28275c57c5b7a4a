//! The echo protocol: judging an answer against the request ([`judge_reply`]), and the
//! fallback for targets that do not speak it (their handshakes are timed instead).

use mio::Token;

use super::flight::Stage;
use super::ConnectProber;
use crate::net;
use crate::probe::{Notice, Status};

/// Judge the bytes received so far against the request sent.
/// None: incomplete, keep reading.
///
/// The answer is one line: the request uppercased (the echo), or `LOST` (the server's
/// simulated loss), each with or without the newline. Line ends left over from an earlier
/// answer (a server that sent its newline separately) are skipped. An answer without a
/// newline is complete as soon as it is the whole echo or exactly `LOST`: a server that
/// strips the newline is answered at once, not after the timeout.
pub fn judge_reply(request: &[u8], got: &[u8]) -> Option<Status> {
    const LOST: &[u8] = b"LOST";
    let got = &got[got
        .iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count()..];
    let line_of = |b: &[u8]| -> (usize, bool) {
        match b.iter().position(|&c| c == b'\n') {
            Some(i) => (i, true),
            None => (b.len(), false),
        }
    };
    let strip_cr = |b: &[u8]| -> Vec<u8> { b.strip_suffix(b"\r").unwrap_or(b).to_vec() };
    let (end, has_newline) = line_of(got);
    let have = strip_cr(&got[..end]);
    let want = strip_cr(&request[..line_of(request).0]).to_ascii_uppercase();
    if !has_newline {
        // Still arriving: a part of the echo, or of LOST. Anything else is wrong already.
        let complete = have == want || have == LOST;
        if !complete && (want.starts_with(&have) || LOST.starts_with(&have)) {
            return None;
        }
    }
    if have == LOST {
        Some(Status::Lost)
    } else if have == want {
        Some(Status::Reply)
    } else {
        Some(Status::Error(format!(
            "{UNEXPECTED_REPLY}: {}",
            net::escape_bytes(&have[..have.len().min(80)])
        )))
    }
}

/// How an error names an answer that is not the request's echo.
pub const UNEXPECTED_REPLY: &str = "unexpected reply";
/// The error of a connection the server closed after the request, without an echo.
pub const CLOSED_BEFORE_ECHO: &str = "connection closed by the server before the echo";

/// Whether a ping's error says its target answered, but not with the echo protocol (an
/// answer that is not the echo, or a close after the request): an SSH banner, an HTTP 400.
pub fn not_echo(why: &str) -> bool {
    why.starts_with(UNEXPECTED_REPLY) || why.starts_with(CLOSED_BEFORE_ECHO)
}

/// What the echo mode has learnt about a target's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Speaks {
    /// It echoed (or answered LOST): it is an echo server; other answers are errors.
    Echo,
    /// It answered something else, or closed after the request: its pings time the
    /// handshake.
    NotEcho,
    /// It stayed silent once and was hinted about; nothing known yet.
    Hinted,
}

/// Most bytes of a non-echo answer quoted in the notice.
const SAW_MAX: usize = 40;

impl ConnectProber {
    /// A ping's target answered `saw` (None: closed the connection without a byte), not
    /// the echo protocol. With the fallback, and unless the target has echoed before, the
    /// ping is a reply timed by its handshake, and the target's next pings time only the
    /// handshake; the first ping that finds out carries the notice. False: an error as
    /// before (`--echo`, or an echo server answering wrongly).
    pub(super) fn not_echo(&mut self, tok: Token, saw: Option<Vec<u8>>) -> bool {
        if !self.fallback {
            return false;
        }
        let Some(f) = self.flights.get_mut(&tok) else {
            return false;
        };
        let target = f.spec.target;
        let before = self.speaks.get(&target).copied();
        if before == Some(Speaks::Echo) {
            return false;
        }
        self.speaks.insert(target, Speaks::NotEcho);
        f.result.handshake_only = true;
        if before != Some(Speaks::NotEcho) {
            let saw = saw.map(|b| net::escape_bytes(&b[..b.len().min(SAW_MAX)]));
            f.result.notice = Some(Notice::NotEcho { saw });
        }
        self.conclude(tok, Status::Reply);
        true
    }

    /// A ping about to time out waiting for its echo: when its target has never answered
    /// (echo mode, with the fallback), it carries the hint that the target may not be an
    /// echo server, once per target.
    pub(super) fn hint_if_silent(&mut self, tok: Token) {
        if !self.fallback {
            return;
        }
        let Some(f) = self.flights.get_mut(&tok) else {
            return;
        };
        if matches!(f.stage, Stage::Echo { .. }) && !self.speaks.contains_key(&f.spec.target) {
            self.speaks.insert(f.spec.target, Speaks::Hinted);
            f.result.notice = Some(Notice::NoEcho);
        }
    }
}
