//! The SYN prober's loop over a fake [`SynIo`]: it records what is sent and replays captured
//! packets (tests/fixtures/syn-captured.txt) as the capture's, so sending, matching and
//! concluding are tested end to end without root.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::prober::SEQ_STEP;
use super::sockets::Outbox;
use super::tests::{at, fixture, sa, spec};
use super::{AnswerKind, Flow, SynIo, SynProber};
use crate::net::Waker;
use crate::probe::capture::{Received, SNAP};
use crate::probe::{Clock, PingResult, Prober, Status};

/// What the fake saw sent, and what it has to show.
#[derive(Default)]
struct World {
    sent: Vec<(Vec<u8>, IpAddr)>,
    /// Captured packets still to read: (bytes, outgoing, kernel time).
    capture: VecDeque<(Vec<u8>, bool, Option<Duration>)>,
    /// The error `send` fails with, when set.
    send_fails: Option<io::ErrorKind>,
    /// The error the n-th packet sent (from 0) fails with, once, when set.
    fail_nth: Option<(usize, io::ErrorKind)>,
    /// Most packets one `send_batch` takes (a partial `sendmmsg`), when set.
    send_most: Option<usize>,
    /// Calls of `send_batch`, and packets offered (counted whether sent or not).
    send_calls: usize,
    offered: usize,
    /// A sender thread: outboxes handed over whole (`send_later`), and the n-th packet
    /// handed over (from 0) reported failed afterwards, when set.
    later: bool,
    later_fails: Option<usize>,
    handed: usize,
    failures: Vec<(u16, u32)>,
    /// Sleeps that a captured packet would end (`wait`), and those it would not (`nap`).
    waits: usize,
    naps: usize,
}

/// A fake set of sockets: one reserved port, one source address, both families unless told.
struct Fake {
    world: Rc<RefCell<World>>,
    port: u16,
    source: IpAddr,
    families: (bool, bool),
}

impl SynIo for Fake {
    fn families(&self) -> (bool, bool) {
        self.families
    }
    fn reserve_port(&mut self) -> io::Result<u16> {
        Ok(self.port)
    }
    fn capture_ports(&mut self, ours: &[u16]) -> io::Result<()> {
        assert_eq!(ours, [self.port]);
        Ok(())
    }
    fn source_for(&mut self, _: SocketAddr) -> io::Result<IpAddr> {
        Ok(self.source)
    }
    fn send_batch(&mut self, out: &Outbox, from: usize) -> io::Result<usize> {
        let mut w = self.world.borrow_mut();
        w.send_calls += 1;
        if let Some(kind) = w.send_fails {
            return Err(kind.into());
        }
        let most = w.send_most.unwrap_or(usize::MAX);
        let mut n = 0;
        for i in from..out.len() {
            if n == most {
                break;
            }
            let offered = w.offered;
            if let Some((nth, kind)) = w.fail_nth {
                if offered == nth {
                    // sendmmsg: an error after some packets left reports those; the
                    // packet fails when it comes first.
                    if n > 0 {
                        return Ok(n);
                    }
                    w.fail_nth = None;
                    w.offered += 1;
                    return Err(kind.into());
                }
            }
            w.offered += 1;
            let (pkt, to) = out.packet(i);
            w.sent.push((pkt.to_vec(), to));
            n += 1;
        }
        Ok(n)
    }
    fn send_later(&mut self, out: &mut Outbox) -> io::Result<bool> {
        let mut w = self.world.borrow_mut();
        if !w.later {
            return Ok(false);
        }
        for i in 0..out.len() {
            if w.later_fails == Some(w.handed) {
                let key = out.key(i);
                w.failures.push(key);
            } else {
                let (pkt, to) = out.packet(i);
                w.sent.push((pkt.to_vec(), to));
            }
            w.handed += 1;
        }
        *out = Outbox::default();
        Ok(true)
    }
    fn send_failures(&mut self) -> Vec<super::sockets::SendFailure> {
        let mut w = self.world.borrow_mut();
        w.failures
            .drain(..)
            .map(|k| (k, io::ErrorKind::HostUnreachable.into()))
            .collect()
    }
    fn recv_batch(&mut self, max: usize, f: &mut dyn FnMut(&[u8], Received)) -> io::Result<usize> {
        let mut n = 0;
        let mut buf = [0u8; SNAP as usize];
        while n < max {
            let Some((pkt, outgoing, at)) = self.world.borrow_mut().capture.pop_front() else {
                break;
            };
            let len = pkt.len().min(buf.len());
            buf[..len].copy_from_slice(&pkt[..len]);
            f(&buf[..len], Received { len, outgoing, at });
            n += 1;
        }
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
    fn nap(&mut self, _: &Waker, timeout: Duration) -> io::Result<bool> {
        self.world.borrow_mut().naps += 1;
        std::thread::sleep(timeout);
        Ok(false)
    }
    fn wait(&mut self, _: &Waker, timeout: Duration) -> io::Result<bool> {
        self.world.borrow_mut().waits += 1;
        if self.world.borrow().capture.is_empty() {
            std::thread::sleep(timeout);
        }
        Ok(false)
    }
    fn drops(&mut self) -> u64 {
        0
    }
}

/// A prober over a fake with `port` and `source`, whose probe 1 has sequence number `first`.
fn prober(
    port: u16,
    source: &str,
    first: u32,
    timeout: Duration,
) -> (SynProber<Fake>, Rc<RefCell<World>>) {
    prober_of((true, true), port, source, first, timeout)
}

/// The same, sending only the `families` given.
fn prober_of(
    families: (bool, bool),

    port: u16,
    source: &str,
    first: u32,
    timeout: Duration,
) -> (SynProber<Fake>, Rc<RefCell<World>>) {
    let world = Rc::new(RefCell::new(World::default()));
    let fake = Fake {
        world: Rc::clone(&world),
        port,
        source: source.parse().unwrap(),
        families,
    };
    let waker = Arc::new(Waker::new().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let p = SynProber::new(fake, Flow::Constant, 1, timeout, true, waker, stop)
        .unwrap()
        .with_seq_base(first.wrapping_sub(SEQ_STEP));
    (p, world)
}

/// Queue the captured packet `name` at kernel time `us`.
fn show(world: &Rc<RefCell<World>>, name: &str, us: u64) {
    let (out, b) = fixture(name);
    world.borrow_mut().capture.push_back((b, out, at(us)));
}

/// Poll until a verdict comes (or a second passes).
fn verdicts(p: &mut SynProber<Fake>) -> Vec<PingResult> {
    let mut done = Vec::new();
    p.poll(Instant::now() + Duration::from_secs(1), &mut done)
        .unwrap();
    done
}

#[test]
fn the_syn_sent_is_the_captured_one_and_its_syn_ack_concludes_it() {
    let (mut p, world) = prober(38515, "10.99.0.1", 0x2356_f0e5, Duration::from_secs(1));
    assert_eq!(p.ports(), [38515]);
    p.send(spec(1, "10.99.0.2:12001"));
    assert!(world.borrow().sent.is_empty(), "it waits in the outbox");
    p.poll(Instant::now(), &mut Vec::new()).unwrap();
    let (sent, to) = world.borrow().sent[0].clone();
    assert_eq!(sent, fixture("v4_syn").1, "byte for byte what the wire saw");
    assert_eq!(to, "10.99.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(p.in_flight(), 1);
    assert!(
        !p.ready(sa("10.99.0.2:12001")),
        "one at a time without an interval"
    );
    show(&world, "v4_syn", 0);
    show(&world, "v4_synack2", 10); // another probe's sequence number
    show(&world, "v4_synack", 24);
    let done = verdicts(&mut p);
    assert_eq!(done.len(), 1);
    let r = &done[0];
    assert_eq!(
        (r.seq, &r.status, r.answer),
        (1, &Status::Reply, Some(AnswerKind::SynAck))
    );
    assert_eq!(r.connect, Some(Duration::from_micros(24)));
    assert_eq!(r.connect_clock, Some(Clock::Wire));
    assert_eq!((r.local_port, r.tcp_seq), (Some(38515), Some(0x2356_f0e5)));
    assert_eq!(p.in_flight(), 0);
    assert_eq!(p.icmp_tally(), Default::default());
}

#[test]
fn an_icmp_error_and_an_rst_conclude_their_probes() {
    let (mut p, world) = prober(50337, "10.99.0.1", 0xb487_215b, Duration::from_secs(1));
    p.send(spec(1, "10.99.0.2:12007"));
    show(&world, "v4_reject_syn", 0);
    show(&world, "v4_reject_icmp", 146);
    let done = verdicts(&mut p);
    match &done[0].status {
        Status::Icmp(rep) => {
            assert_eq!((rep.icmp_type, rep.code), (3, 13));
            assert_eq!(rep.after, Duration::from_micros(146));
        }
        s => panic!("{s:?}"),
    }
    // The same error again: late.
    show(&world, "v4_reject_icmp", 200);
    let mut done = Vec::new();
    p.poll(Instant::now() + Duration::from_millis(5), &mut done)
        .unwrap();
    assert!(done.is_empty());
    assert_eq!(p.icmp_tally().late, 1);

    let (mut p, world) = prober(49671, "10.99.0.1", 0x77d4_bc94, Duration::from_secs(1));
    p.send(spec(1, "10.99.0.2:12999"));
    show(&world, "v4_closed_rst", 30);
    let r = &verdicts(&mut p)[0];
    assert_eq!(
        (&r.status, r.answer),
        (&Status::Refused, Some(AnswerKind::Rst))
    );
    assert_eq!(
        r.connect_clock,
        Some(Clock::User),
        "its SYN was not seen leaving"
    );
}

#[test]
fn icmpv6_errors_reach_their_probe_through_the_loop() {
    let (mut p, world) = prober(54641, "fd99::1", 0x0304_d556, Duration::from_secs(1));
    p.send(spec(1, "[fd99::2]:12007"));
    show(&world, "v6_reject_syn", 0);
    show(&world, "v6_reject_icmp", 57);
    let r = &verdicts(&mut p)[0];
    assert!(matches!(r.status, Status::Icmp(ref rep) if rep.v6 && rep.code == 1));
}

#[test]
fn silence_is_a_timeout_and_failures_to_send_are_errors() {
    let (mut p, world) = prober(38515, "10.99.0.1", 1, Duration::from_millis(20));
    p.send(spec(1, "10.99.0.2:12001"));
    show(&world, "v4_synack", 5); // not this probe's sequence number
    let done = verdicts(&mut p);
    assert_eq!((done[0].seq, &done[0].status), (1, &Status::Timeout));

    world.borrow_mut().send_fails = Some(io::ErrorKind::PermissionDenied);
    p.send(spec(2, "10.99.0.2:12001"));
    assert_eq!(p.in_flight(), 1);
    let done = verdicts(&mut p);
    assert!(
        matches!(&done[0].status, Status::Error(e) if e.starts_with("send the SYN: ")),
        "{:?}",
        done[0].status
    );

    let (mut p, world) = prober_of((true, false), 38515, "fd99::1", 1, Duration::from_secs(1));
    p.send(spec(1, "[fd99::2]:12007"));
    let done = verdicts(&mut p);
    assert_eq!(
        done[0].status,
        Status::Error("no raw socket of this address family was opened".into())
    );
    assert!(world.borrow().sent.is_empty());
}

/// Back to back (-i 0): `n` probes to 10.99.0.2:12001, all in flight at once.
fn window(n: u64) -> (SynProber<Fake>, Rc<RefCell<World>>) {
    let (p, world) = prober(38515, "10.99.0.1", 0x2356_f0e5, Duration::from_secs(1));
    let mut p = p.with_interval(Duration::ZERO).with_overlap(32);
    for seq in 1..=n {
        assert!(
            p.ready(sa("10.99.0.2:12001")),
            "probe {seq} fits the window"
        );
        p.send(spec(seq, "10.99.0.2:12001"));
    }
    (p, world)
}

/// The sequence number of each packet sent, in order.
fn sent_seqs(world: &Rc<RefCell<World>>) -> Vec<u32> {
    let w = world.borrow();
    w.sent
        .iter()
        .map(|(b, _)| u32::from_be_bytes(b[24..28].try_into().unwrap()))
        .collect()
}

#[test]
fn back_to_back_probes_leave_together_in_one_system_call() {
    let (mut p, world) = window(5);
    assert!(world.borrow().sent.is_empty());
    p.poll(Instant::now(), &mut Vec::new()).unwrap();
    let first = 0x2356_f0e5u32;
    let want: Vec<u32> = (0..5).map(|k| first.wrapping_add(k * SEQ_STEP)).collect();
    assert_eq!(
        sent_seqs(&world),
        want,
        "in order, each its own sequence number"
    );
    assert_eq!(world.borrow().send_calls, 1);
    // The first one's capture and SYN-ACK conclude it alone.
    show(&world, "v4_syn", 0);
    show(&world, "v4_synack", 24);
    let done = verdicts(&mut p);
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].seq, &done[0].status), (1, &Status::Reply));
    assert_eq!(done[0].connect, Some(Duration::from_micros(24)));
    assert_eq!(p.in_flight(), 4);
}

#[test]
fn a_partial_sendmmsg_sends_the_rest_after() {
    let (mut p, world) = window(5);
    world.borrow_mut().send_most = Some(2);
    p.poll(Instant::now(), &mut Vec::new()).unwrap();
    assert_eq!(sent_seqs(&world).len(), 5, "every SYN left");
    assert_eq!(world.borrow().send_calls, 3, "2 + 2 + 1");
    assert_eq!(p.in_flight(), 5);
}

#[test]
fn a_packet_that_cannot_leave_mid_batch_ends_its_probe_alone() {
    for kind in [io::ErrorKind::HostUnreachable, io::ErrorKind::WouldBlock] {
        let (mut p, world) = window(5);
        world.borrow_mut().fail_nth = Some((2, kind));
        let mut done = Vec::new();
        p.poll(Instant::now(), &mut done).unwrap();
        only_the_third_failed(&p, &world, &done);
    }
}

/// Of a window of 5, the third SYN did not leave: its probe alone ended, with the error.
fn only_the_third_failed(p: &SynProber<Fake>, world: &Rc<RefCell<World>>, done: &[PingResult]) {
    assert_eq!(sent_seqs(world).len(), 4, "the others left");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].seq, 3);
    assert!(
        matches!(&done[0].status, Status::Error(e) if e.starts_with("send the SYN")),
        "{:?}",
        done[0].status
    );
    assert_eq!(p.in_flight(), 4);
}

#[test]
fn a_sender_thread_gets_the_whole_outbox_and_its_failures_end_their_probes() {
    let (mut p, world) = window(5);
    {
        let mut w = world.borrow_mut();
        w.later = true;
        w.later_fails = Some(2);
    }
    let mut done = Vec::new();
    p.poll(Instant::now(), &mut done).unwrap();
    assert_eq!(
        world.borrow().send_calls,
        0,
        "no sendmmsg on the prober's thread"
    );
    assert_eq!(
        world.borrow().handed,
        5,
        "the five SYNs handed over at once"
    );
    only_the_third_failed(&p, &world, &done);
}

#[test]
fn with_many_targets_a_short_wait_is_a_nap_and_a_long_one_wakes_for_answers() {
    for (nap, until_ms, naps, waits) in [(true, 1, 1, 0), (true, 50, 0, 1), (false, 1, 0, 1)] {
        let (p, world) = prober(38515, "10.99.0.1", 1, Duration::from_secs(1));
        let mut p = p.with_nap(nap);
        p.send(spec(1, "10.99.0.2:12001"));
        let until = Instant::now() + Duration::from_millis(until_ms);
        p.poll(until, &mut Vec::new()).unwrap();
        let w = world.borrow();
        assert_eq!(
            (w.naps, w.waits),
            (naps, waits),
            "nap {nap}, {until_ms} ms to wait"
        );
    }
}

#[test]
fn garbage_in_a_captured_batch_is_skipped() {
    let (mut p, world) = window(1);
    let (_, synack) = fixture("v4_synack");
    for junk in [
        vec![],
        vec![0x45],
        vec![0x45; 19],
        synack[..30].to_vec(),
        vec![0xff; 600],
    ] {
        world.borrow_mut().capture.push_back((junk, false, at(3)));
    }
    show(&world, "v4_syn", 0);
    world
        .borrow_mut()
        .capture
        .push_back((vec![0x60, 0, 0], true, None));
    show(&world, "v4_synack", 24);
    let done = verdicts(&mut p);
    assert_eq!(done.len(), 1);
    assert_eq!(
        (&done[0].status, done[0].connect),
        (&Status::Reply, Some(Duration::from_micros(24)))
    );
}

#[test]
fn back_to_back_the_window_grows_while_answers_come_within_the_send_and_falls_back_when_not() {
    let (p, world) = prober(38515, "10.99.0.1", 0x2356_f0e5, Duration::from_secs(1));
    let mut p = p.with_interval(Duration::ZERO);
    let target = sa("10.99.0.2:12001");
    p.send(spec(1, "10.99.0.2:12001"));
    assert!(!p.ready(target), "one at a time at first");
    // Its SYN and SYN-ACK are there as soon as the send returns (namespaces, loopback).
    show(&world, "v4_syn", 0);
    show(&world, "v4_synack", 24);
    let done = verdicts(&mut p);
    assert_eq!((done.len(), &done[0].status), (1, &Status::Reply));
    p.send(spec(2, "10.99.0.2:12001"));
    assert!(p.ready(target), "the window grew to two");
    p.send(spec(3, "10.99.0.2:12001"));
    assert!(!p.ready(target), "and not beyond");
    // These two are not answered within their send (a real network): back to one.
    let mut done = Vec::new();
    p.poll(Instant::now() + Duration::from_millis(2), &mut done)
        .unwrap();
    assert!(done.is_empty());
    assert_eq!(p.in_flight(), 2);
    let _ = verdicts(&mut p); // both time out after a second
    assert_eq!(p.in_flight(), 0);
    p.send(spec(4, "10.99.0.2:12001"));
    assert!(!p.ready(target), "one at a time again");
}
