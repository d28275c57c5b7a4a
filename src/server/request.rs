//! Where a request ends: the server's framing rule, apart from the sockets so that it is
//! tested on its own.
//!
//! - A newline ends a request (`\r\n` too; neither is part of it).
//! - Without a newline, a request is complete when it is a whole request of the original
//!   Python client, which sends `ping <seq> <YYYY-MM-DD HH:MM:SS.ffffff>` in one `send` with no
//!   newline and waits for the answer; or when the client half-closes (its bytes so far are
//!   its last request).
//! - Anything else waits for more bytes, however they were split, so each request is
//!   answered once, and draws the loss RNG once.
//!
//! A newline that directly follows a request answered without one only ends that request.

/// How a request without a newline stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bare {
    /// Not a whole request: wait for a newline, a half-close or more bytes.
    No,
    /// The original client's request: answer it now.
    Complete,
    /// The original client's request without the fraction of the second (Python's
    /// `str(datetime)` prints none when the microsecond is 0): complete unless more bytes
    /// follow within the quiet period.
    UnlessMore,
}

/// Classify bytes that have no newline (yet).
pub fn bare(b: &[u8]) -> Bare {
    let Some(rest) = b.strip_prefix(b"ping ") else {
        return Bare::No;
    };
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return Bare::No;
    }
    let Some(ts) = rest[digits..].strip_prefix(b" ") else {
        return Bare::No;
    };
    // 'd' stands for a digit, every other byte for itself.
    let shaped = |pattern: &[u8]| {
        ts.len() == pattern.len()
            && ts.iter().zip(pattern).all(|(c, p)| {
                if *p == b'd' {
                    c.is_ascii_digit()
                } else {
                    c == p
                }
            })
    };
    if shaped(b"dddd-dd-dd dd:dd:dd.dddddd") {
        Bare::Complete
    } else if shaped(b"dddd-dd-dd dd:dd:dd") {
        Bare::UnlessMore
    } else {
        Bare::No
    }
}

/// The bytes of one connection, cut into requests.
#[derive(Default, Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// First byte not yet handed out as part of a request.
    start: usize,
    /// Bytes before this index (from `start`) hold no newline.
    scanned: usize,
    /// The last request was answered without a newline: a newline right after only ends it.
    after_bare: bool,
}

impl Framer {
    /// Bytes just read from the client.
    pub fn push(&mut self, mut data: &[u8]) {
        if std::mem::take(&mut self.after_bare) && self.start == self.buf.len() {
            if let Some(rest) = data.strip_prefix(b"\r\n") {
                data = rest;
            } else if let Some(rest) = data.strip_prefix(b"\n") {
                data = rest;
            }
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete line: the range of its bytes, without `\n` or `\r\n`.
    pub fn next_line(&mut self) -> Option<(usize, usize)> {
        let from = self.scanned.max(self.start);
        match self.buf[from..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let nl = from + i;
                let mut end = nl;
                if end > self.start && self.buf[end - 1] == b'\r' {
                    end -= 1;
                }
                let line = (self.start, end);
                self.start = nl + 1;
                self.scanned = self.start;
                Some(line)
            }
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }

    /// The bytes of a range handed out by `next_line`.
    pub fn get(&self, (from, to): (usize, usize)) -> &[u8] {
        &self.buf[from..to]
    }

    /// The bytes of the request not complete yet.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The pending bytes were answered as a request without a newline.
    pub fn take_bare(&mut self) {
        self.start = self.buf.len();
        self.after_bare = true;
        self.compact();
    }

    /// Forget the bytes handed out (call after the lines of a read are answered).
    pub fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
        } else if self.start > 0 {
            self.buf.drain(..self.start);
        } else {
            return;
        }
        self.scanned = self.scanned.saturating_sub(self.start);
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a connection's bytes, read in the given pieces, are answered as: each request
    /// and whether it had a newline. A half-close ends the stream when `half_close`.
    fn requests(pieces: &[&[u8]], half_close: bool) -> Vec<(String, bool)> {
        let mut f = Framer::default();
        let mut out = Vec::new();
        for p in pieces {
            f.push(p);
            while let Some(r) = f.next_line() {
                out.push((String::from_utf8_lossy(f.get(r)).into_owned(), true));
            }
            f.compact();
            if bare(f.pending()) == Bare::Complete {
                out.push((String::from_utf8_lossy(f.pending()).into_owned(), false));
                f.take_bare();
            }
        }
        if half_close && !f.pending().is_empty() {
            out.push((String::from_utf8_lossy(f.pending()).into_owned(), false));
        }
        out
    }

    fn split_at_every(bytes: &[u8]) -> Vec<&[u8]> {
        bytes.chunks(1).collect()
    }

    #[test]
    fn original_requests_are_recognised() {
        assert_eq!(bare(b"ping 1 2024-09-09 12:00:00.123456"), Bare::Complete);
        assert_eq!(
            bare(b"ping 18446744073709551615 2024-09-09 12:00:00.000001"),
            Bare::Complete
        );
        assert_eq!(bare(b"ping 1 2024-09-09 12:00:00"), Bare::UnlessMore);
        for no in [
            &b""[..],
            b"ping",
            b"ping 1",
            b"ping 1 ",
            b"ping 1 2024-09-09 12:00:00.12345",
            b"ping 1 2024-09-09 12:00:00.1234567",
            b"ping 1 2024-09-09 12:00:00.",
            b"ping  1 2024-09-09 12:00:00.123456",
            b"ping x 2024-09-09 12:00:00.123456",
            b"PING 1 2024-09-09 12:00:00.123456",
            b"ping 1 2024/09/09 12:00:00.123456",
            b"ping 1 1795691062.304788",
            b"ping 123456789012345678901 2024-09-09 12:00:00.123456",
            b"ping 1 2024-09-09 12:00:00.123456\r",
        ] {
            assert_eq!(bare(no), Bare::No, "{:?}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn no_proper_prefix_of_an_original_request_is_complete() {
        let req = b"ping 12 2024-09-09 12:00:00.123456";
        for i in 0..req.len() {
            assert_ne!(bare(&req[..i]), Bare::Complete, "{i}");
        }
    }

    #[test]
    fn lines_split_trickled_and_pipelined() {
        let want = vec![("ping 11 12".to_string(), true)];
        assert_eq!(requests(&[b"ping 11 ", b"12\n"], false), want);
        assert_eq!(requests(&split_at_every(b"ping 11 12\n"), false), want);
        assert_eq!(requests(&split_at_every(b"ping 11 12\r\n"), false), want);
        assert_eq!(
            requests(&[b"a\nb\r\n\nc", b"\n"], false),
            [("a", true), ("b", true), ("", true), ("c", true)]
                .map(|(s, n)| (s.to_string(), n))
                .to_vec()
        );
        // An unterminated fragment is never a request of its own...
        assert_eq!(requests(&[b"ping 11 "], false), vec![]);
        // ...unless the client half-closes after it.
        assert_eq!(
            requests(&[b"ping 1 a\nping 2 b"], true),
            vec![("ping 1 a".into(), true), ("ping 2 b".into(), false)]
        );
    }

    #[test]
    fn the_original_request_is_answered_when_its_last_byte_comes() {
        let req = b"ping 3 2024-09-09 12:00:00.123456";
        let want = vec![(String::from_utf8_lossy(req).into_owned(), false)];
        assert_eq!(requests(&[req], false), want);
        assert_eq!(requests(&split_at_every(req), false), want);
        // A newline right after it only ends it; the next request is a request.
        let mut pieces = split_at_every(req);
        pieces.push(b"\n");
        pieces.push(b"ping 4 x\n");
        assert_eq!(
            requests(&pieces, false),
            [want.clone(), vec![("ping 4 x".into(), true)]].concat()
        );
        let mut pieces = vec![&req[..]];
        pieces.push(b"\r\nping 4 x\n");
        assert_eq!(
            requests(&pieces, false),
            [want.clone(), vec![("ping 4 x".into(), true)]].concat()
        );
        // Only right after: an empty line later is a request.
        assert_eq!(
            requests(&[req, b"ping 4 x\n", b"\n"], false),
            [want, vec![("ping 4 x".into(), true), ("".into(), true)]].concat()
        );
    }

    proptest! {
        /// However the bytes of a stream of requests are cut, the same requests come out,
        /// in order: one answer and one loss draw each.
        #[test]
        fn any_split_gives_the_same_requests(
            lines in proptest::collection::vec("[a-z0-9 .:-]{0,40}", 1..20),
            cuts in proptest::collection::vec(1usize..50, 1..40),
            crlf in any::<bool>(),
        ) {
            // (A line of the original client's form, cut right before its newline, is
            // answered without one: the rule's one exception, tested above.)
            prop_assume!(lines.iter().all(|l| bare(l.as_bytes()) == Bare::No));
            let end = if crlf { "\r\n" } else { "\n" };
            let stream: String = lines.iter().map(|l| format!("{l}{end}")).collect();
            let whole = requests(&[stream.as_bytes()], false);
            let mut pieces = Vec::new();
            let mut rest = stream.as_bytes();
            for c in cuts.iter().cycle() {
                if rest.is_empty() { break; }
                let (a, b) = rest.split_at((*c).min(rest.len()));
                pieces.push(a);
                rest = b;
            }
            prop_assert_eq!(requests(&pieces, false), whole.clone());
            let want: Vec<(String, bool)> = lines.iter().map(|l| (l.clone(), true)).collect();
            prop_assert_eq!(whole, want);
        }
    }
}
