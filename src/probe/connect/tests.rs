//! The connect probe's pure parts on fixed bytes: judging echoes, pipelined answers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use socket2::{Domain, Socket, Type};

use super::echo::judge_reply;
use super::pipe::{Answer, Pipe, Req};
use super::socket::Conn;
use crate::probe::Status;

const REQ: &[u8] = b"ping 3 1700000000.123456\n";

#[test]
fn echo_with_and_without_newline() {
    assert_eq!(
        judge_reply(REQ, b"PING 3 1700000000.123456\n"),
        Some(Status::Reply)
    );
    // A server that answers the bytes it got uppercased echoes our newline too; one that
    // strips it is complete once it is as long as the request.
    assert_eq!(
        judge_reply(REQ, b"PING 3 1700000000.123456\r\n"),
        Some(Status::Reply)
    );
    assert_eq!(judge_reply(REQ, b"PING 3 17000"), None);
}

#[test]
fn an_echo_without_its_newline_is_complete_when_whole() {
    assert_eq!(
        judge_reply(REQ, b"PING 3 1700000000.123456"),
        Some(Status::Reply)
    );
    // The newline that follows on its own is skipped by the next ping's judging.
    assert_eq!(
        judge_reply(b"ping 4 1\n", b"\nPING 4 1\n"),
        Some(Status::Reply)
    );
    assert_eq!(judge_reply(b"ping 4 1\n", b"\r\nLOST"), Some(Status::Lost));
}

#[test]
fn only_lost_as_the_whole_answer_is_loss() {
    for bad in [
        &b"LOSTX"[..],
        b"LOSTX\n",
        b"LOST, or maybe not\n",
        b"LOST 3\n",
    ] {
        let s = judge_reply(REQ, bad).unwrap();
        assert!(
            matches!(s, Status::Error(ref m) if m.contains("unexpected reply")),
            "{:?}: {s:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(judge_reply(REQ, b"LOST\r\n"), Some(Status::Lost));
    // Garbage that cannot become an answer is judged at once, not at the timeout.
    assert!(matches!(judge_reply(REQ, b"HELLO"), Some(Status::Error(_))));
}

#[test]
fn lost_in_pieces() {
    assert_eq!(judge_reply(REQ, b"LO"), None);
    assert_eq!(judge_reply(REQ, b"LOST"), Some(Status::Lost));
    assert_eq!(judge_reply(REQ, b"LOST\n"), Some(Status::Lost));
}

/// A pipe (not connected: only its answer parsing is used) with requests 1..=n sent.
fn pipe_with(n: u64) -> Pipe {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let mut reqs = VecDeque::new();
    for seq in 1..=n {
        let request = format!("ping {seq} 1700000000.00000{seq}\n").into_bytes();
        reqs.push_back(Req {
            seq,
            lo: 0,
            hi: 0,
            request,
            sent_at: Instant::now(),
            tx: None,
            ping: None,
        });
    }
    Pipe {
        conn: Conn {
            sock,
            local,
            isn: None,
            sent: 0,
        },
        target: local,
        registered: Instant::now(),
        ids: false,
        buf: Vec::new(),
        attributed_at: None,
        failed: None,
        reqs,
    }
}

fn answers(p: &mut Pipe, got: &[u8]) -> Vec<Answer> {
    p.buf.extend_from_slice(got);
    std::iter::from_fn(|| p.next_answer()).collect()
}

#[test]
fn pipelined_echoes_name_their_ping_by_sequence_number() {
    let mut p = pipe_with(3);
    let echo = |seq: u64| Answer::Echo { seq, right: true };
    // Out of order, split anywhere, with and without newlines.
    assert_eq!(
        answers(&mut p, b"PING 2 1700000000.000002\nPING 1 1700"),
        vec![echo(2)]
    );
    assert_eq!(answers(&mut p, b"000000.000001\r\n"), vec![echo(1)]);
    // A server that strips newlines: echoes back to back.
    assert_eq!(
        answers(&mut p, b"PING 3 1700000000.000003PING 1 1700000000.000001"),
        vec![echo(3), echo(1)]
    );
    assert_eq!(answers(&mut p, b"LOST\nLO"), vec![Answer::Lost]);
    assert_eq!(answers(&mut p, b"ST"), vec![Answer::Lost]);
    // The echo of an unknown ping names it (late); a wrong echo of a known one is wrong.
    assert_eq!(
        answers(&mut p, b"PING 9 1\nPING 2 1700000000.999999\n"),
        vec![
            Answer::Echo {
                seq: 9,
                right: true
            },
            Answer::Echo {
                seq: 2,
                right: false
            }
        ]
    );
    assert!(matches!(
        answers(&mut p, b"LOSTX\n").as_slice(),
        [Answer::Other(s)] if s == "LOSTX"
    ));
    assert!(matches!(
        answers(&mut p, b"SSH-2.0").as_slice(),
        [Answer::Other(_)]
    ));
}

#[test]
fn wrong_answers() {
    let s = judge_reply(REQ, b"PING 4 1700000000.123456\n").unwrap();
    assert!(
        matches!(s, Status::Error(ref m) if m.contains("unexpected reply")),
        "{s:?}"
    );
    let s = judge_reply(REQ, b"ERROR request is not UTF-8 text\n").unwrap();
    assert!(matches!(s, Status::Error(_)));
    let s = judge_reply(REQ, b"\xff\xfe\n").unwrap();
    assert!(matches!(s, Status::Error(_)));
}
