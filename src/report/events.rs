//! Reading the NDJSON events a run writes (`--json`), line by line, in bounded memory. The
//! schema is `crate::event`'s: every field read is optional there, so files from older
//! versions (no `start` event, no `ts`) and events this reader does not know are taken, not
//! refused.
//!
//! Kinds of events read:
//! - ping runs: `start`, `ping`, `summary` (README "JSON output"); with many targets, each
//!   carries `target` and optionally `labels` (`{"name": "db1", ...}`);
//! - traces (draft schema): `trace_start`, `probe` (one per probe), `hop` (one per hop),
//!   `trace` (the verdict).
//!
//! Any other `type` is skipped. A line that is not a JSON object is an error the reader counts
//! and names (a run killed mid-write leaves a truncated last line).

use std::io::BufRead;

use crate::event;

pub use crate::event::Labels;
/// The events as read: owned.
pub type Event = event::Event<'static>;
pub type Start = event::Start<'static>;
pub type Icmp = event::Icmp<'static>;
pub type Ping = event::Ping<'static>;
pub type Summary = event::Summary<'static>;
pub type TraceStart = event::TraceStart<'static>;
pub type Probe = event::Probe<'static>;
pub type Hop = event::Hop<'static>;
pub type Trace = event::Trace<'static>;

/// Parse one line. `Ok(None)`: a blank line.
pub fn parse_line(line: &str) -> Result<Option<Event>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if !line.starts_with('{') {
        return Err("not a JSON object".into());
    }
    serde_json::from_str::<Event>(line)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The longest line read, bytes: a longer one is skipped (and named), not buffered.
pub const MAX_LINE: usize = 1 << 20;

/// Lines that could not be read, counted; the first is kept to be named.
#[derive(Debug, Default)]
pub struct BadLines {
    pub count: u64,
    /// `FILE:LINE: why`, of the first bad line.
    pub first: Option<String>,
    /// Lines longer than `MAX_LINE` (also counted in `count`), and the first of them.
    pub too_long: u64,
    pub first_too_long: Option<String>,
}

impl BadLines {
    fn note(&mut self, name: &str, lineno: u64, why: &str) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(format!("{name}:{lineno}: {why}"));
        }
    }
}

/// One line of `input` into `buf` (without the newline), at most `MAX_LINE` bytes of it.
/// Ok(None): the end. Ok(Some(false)): the line was longer; the rest of it was read past,
/// never held.
fn read_line<R: BufRead>(input: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut any = false;
    let mut fits = true;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then_some(fits));
        }
        any = true;
        let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if fits {
            if buf.len() + take > MAX_LINE {
                fits = false;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        input.consume(take + usize::from(end));
        if end {
            return Ok(Some(fits));
        }
    }
}

/// Read every event of `input` (named `name` in messages), line by line, and hand each to
/// `each`. Memory stays flat: one line at a time, of at most `MAX_LINE` bytes (a longer
/// one is skipped, and reading goes on). Err: the input could not be read.
pub fn read_events<R: BufRead>(
    mut input: R,
    name: &str,
    bad: &mut BadLines,
    mut each: impl FnMut(Event),
) -> std::io::Result<u64> {
    let mut buf = Vec::with_capacity(512);
    let mut lineno = 0u64;
    let mut events = 0u64;
    while let Some(fits) = read_line(&mut input, &mut buf)? {
        lineno += 1;
        if !fits {
            let why = format!("longer than {MAX_LINE} bytes, skipped");
            bad.note(name, lineno, &why);
            bad.too_long += 1;
            if bad.first_too_long.is_none() {
                bad.first_too_long = Some(format!("{name} line {lineno}: {why}"));
            }
            continue;
        }
        let parsed = match std::str::from_utf8(&buf) {
            Ok(s) => parse_line(s),
            Err(_) => Err("not UTF-8".into()),
        };
        match parsed {
            Ok(Some(ev)) => {
                events += 1;
                each(ev);
            }
            Ok(None) => {}
            Err(why) => bad.note(name, lineno, &why),
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_events() {
        let start = r#"{"type":"start","target":"10.77.2.2:12001","address":"10.77.2.2:12001","source":"10.77.1.2","host":"lab-client","probe":"connect","mode":"echo","count":2,"interval_ms":1000.0,"timeout_ms":1000.0,"ts":1764460800.123456}"#;
        match parse_line(start).unwrap().unwrap() {
            Event::Start(s) => {
                assert_eq!(s.target.as_deref(), Some("10.77.2.2:12001"));
                assert_eq!(s.host.as_deref(), Some("lab-client"));
                assert_eq!(s.interval_ms, Some(1000.0));
                assert_eq!(s.ts, Some(1764460800.123456));
            }
            other => panic!("{other:?}"),
        }
        let ping = r#"{"type":"ping","seq":2,"ts":1764460801.123498,"status":"icmp","connect_ms":null,"rtt_ms":null,"connect_user_ms":null,"rtt_user_ms":null,"connect_clock":null,"rtt_clock":null,"local_port":40125,"error":null,"icmp":{"type":3,"code":1,"from":"10.77.1.1","reason":"destination host unreachable","after_ms":0.41,"phase":"connect","source":"raw"}}"#;
        match parse_line(ping).unwrap().unwrap() {
            Event::Ping(p) => {
                assert_eq!(p.seq, Some(2));
                assert_eq!(p.status.as_deref(), Some("icmp"));
                let i = p.icmp.unwrap();
                assert_eq!((i.icmp_type, i.code), (Some(3), Some(1)));
                assert_eq!(i.from.as_deref(), Some("10.77.1.1"));
            }
            other => panic!("{other:?}"),
        }
        let many = r#"{"type":"ping","target":"db1.example:5432","labels":{"name":"db1","tier":"prod"},"seq":1,"status":"reply","rtt_ms":0.5}"#;
        match parse_line(many).unwrap().unwrap() {
            Event::Ping(p) => {
                assert_eq!(p.target.as_deref(), Some("db1.example:5432"));
                assert_eq!(p.labels.unwrap()["name"], "db1");
            }
            other => panic!("{other:?}"),
        }
        let unmatched = r#"{"type":"unmatched_icmp","icmp_type":3,"code":1}"#;
        assert!(matches!(parse_line(unmatched), Ok(Some(Event::Other))));
        assert!(parse_line("   ").unwrap().is_none());
    }

    #[test]
    fn reads_the_trace_draft() {
        let lines = [
            r#"{"type":"trace_start","target":"10.0.3.2:443","address":"10.0.3.2:443","source":"10.0.1.2","host":"h","max_hops":30,"queries":3,"flows":1,"ts":1.5}"#,
            r#"{"type":"probe","hop":2,"query":1,"flow":0,"cycle":0,"ts":1.6,"status":"time_exceeded","from":"10.0.2.1","rtt_ms":0.41,"icmp":{"type":11,"code":0,"reason":"ttl exceeded in transit"}}"#,
            r#"{"type":"probe","hop":3,"query":1,"flow":0,"cycle":0,"ts":1.7,"status":"timeout","from":null,"rtt_ms":null,"icmp":null}"#,
            r#"{"type":"hop","hop":2,"routers":["10.0.2.1"],"sent":3,"received":3,"loss_pct":0.0,"last_ms":0.4,"avg_ms":0.4,"best_ms":0.3,"worst_ms":0.5,"stddev_ms":0.1}"#,
            r#"{"type":"trace","verdict":"path_ends","hops":3,"break_hop":3,"break_router":"10.0.2.1","text":"path ends at hop 3"}"#,
        ];
        let evs: Vec<Event> = lines
            .iter()
            .map(|l| parse_line(l).unwrap().unwrap())
            .collect();
        assert!(matches!(&evs[0], Event::TraceStart(t) if t.max_hops == Some(30)));
        assert!(matches!(&evs[1], Event::Probe(p) if p.hop == Some(2) && p.rtt_ms == Some(0.41)));
        assert!(matches!(&evs[2], Event::Probe(p) if p.from.is_none() && p.rtt_ms.is_none()));
        assert!(matches!(&evs[3], Event::Hop(h) if h.routers == ["10.0.2.1"]));
        assert!(matches!(&evs[4], Event::Trace(t) if t.break_hop == Some(3)));
    }

    #[test]
    fn bad_lines_are_counted_and_named_not_fatal() {
        let text = b"{\"type\":\"ping\",\"seq\":1,\"status\":\"reply\",\"rtt_ms\":1.0}\n\
            garbage\n\
            {\"type\":\"ping\",\"seq\":\"two\"}\n\
            \xff\xfe\n\
            {\"type\":\"ping\",\"seq\":3,\"status\":\"reply\",\"rtt_ms\":1.0}\n\
            {\"type\":\"ping\",\"seq\":4,\"sta";
        let mut bad = BadLines::default();
        let mut seqs = Vec::new();
        let n = read_events(&text[..], "x.ndjson", &mut bad, |e| {
            if let Event::Ping(p) = e {
                seqs.push(p.seq.unwrap());
            }
        })
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(seqs, [1, 3]);
        assert_eq!(bad.count, 4);
        assert_eq!(
            bad.first.as_deref(),
            Some("x.ndjson:2: not a JSON object"),
            "{bad:?}"
        );
        // Every truncation of a valid line is an error or a valid event, never a panic.
        let line = r#"{"type":"ping","seq":1,"ts":1.5,"status":"icmp","icmp":{"type":3,"code":1,"from":"10.0.0.1","reason":"x"}}"#;
        for i in 0..line.len() {
            let _ = parse_line(&line[..i]);
        }
    }

    #[test]
    fn a_line_longer_than_the_bound_is_skipped_and_named_and_reading_goes_on() {
        let good = |seq: u64| {
            format!("{{\"type\":\"ping\",\"seq\":{seq},\"status\":\"reply\",\"rtt_ms\":1.0}}\n")
        };
        let mut text = good(1).into_bytes();
        // Line 2: 3 MiB without a newline, then its end; line 3 exactly at the bound.
        text.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE));
        text.push(b'\n');
        let mut at_bound = good(2).trim_end().as_bytes().to_vec();
        at_bound.resize(MAX_LINE, b' ');
        text.extend(at_bound);
        text.push(b'\n');
        text.extend(good(3).into_bytes());
        // The last line: too long and no newline at all.
        text.extend(std::iter::repeat_n(b'{', MAX_LINE + 1));
        let mut bad = BadLines::default();
        let mut seqs = Vec::new();
        // A small buffer: the line arrives in many pieces.
        let input = std::io::BufReader::with_capacity(4096, &text[..]);
        read_events(input, "big", &mut bad, |e| {
            if let Event::Ping(p) = e {
                seqs.push(p.seq.unwrap());
            }
        })
        .unwrap();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!((bad.count, bad.too_long), (2, 2), "{bad:?}");
        assert_eq!(
            bad.first_too_long.as_deref(),
            Some("big line 2: longer than 1048576 bytes, skipped")
        );
    }
}
