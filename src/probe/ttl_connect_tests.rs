//! Tests of `ttl_connect`: the flows' lanes (pure), the ICMP times, and constant flows on
//! loopback (no privilege needed).

use super::*;

#[test]
fn an_icmp_error_is_timed_to_its_kernel_receive_stamp() {
    let sent = Instant::now();
    let now = sent + Duration::from_millis(3);
    let wall = Duration::from_secs(1_800_000_000);
    // Read 3 ms after the send (late in a burst); it arrived 41 µs after it.
    let rx = wall + Duration::from_micros(41);
    assert_eq!(
        icmp_after(Some(rx), wall, sent, now),
        Duration::from_micros(41)
    );
    // No stamp, or one before the send (a clock step): the read time.
    assert_eq!(icmp_after(None, wall, sent, now), Duration::from_millis(3));
    let early = wall - Duration::from_micros(5);
    assert_eq!(
        icmp_after(Some(early), wall, sent, now),
        Duration::from_millis(3)
    );
}

fn spec(seq: u64, flow: u16, ttl: u8) -> ProbeSpec {
    ProbeSpec {
        seq,
        target: "192.0.2.1:443".parse().unwrap(),
        ttl: Some(ttl),
        flow,
    }
}

#[test]
fn a_flows_probes_leave_one_at_a_time_in_order_and_flows_side_by_side() {
    let mut lanes = Lanes::new(2);
    for (seq, flow, ttl) in [(1, 0, 1), (2, 1, 1), (3, 0, 2), (4, 1, 2), (5, 0, 3)] {
        lanes.push(spec(seq, flow, ttl)).unwrap();
    }
    // One of each flow now, nothing more until one is done.
    assert_eq!(lanes.take_next().map(|s| s.seq), Some(1));
    assert_eq!(lanes.take_next().map(|s| s.seq), Some(2));
    assert_eq!(lanes.take_next(), None);
    assert_eq!(lanes.waiting(), 3);
    // Flow 1 done: its next (TTL 2); flow 0 still busy.
    lanes.done(1);
    assert_eq!(
        lanes.take_next().map(|s| (s.seq, s.ttl)),
        Some((4, Some(2)))
    );
    assert_eq!(lanes.take_next(), None);
    lanes.done(0);
    assert_eq!(lanes.take_next().map(|s| s.seq), Some(3));
    lanes.done(0);
    assert_eq!(lanes.take_next().map(|s| s.seq), Some(5));
    assert_eq!(lanes.waiting(), 0);
    // A flow that does not exist is refused, not queued; done on one is harmless.
    assert_eq!(lanes.push(spec(6, 2, 1)).map_err(|s| s.seq), Err(6));
    lanes.done(7);
    assert_eq!(lanes.waiting(), 0);
}

#[test]
fn drained_lanes_give_back_every_waiting_probe() {
    let mut lanes = Lanes::new(3);
    for seq in 1..=6 {
        lanes.push(spec(seq, (seq % 3) as u16, 1)).unwrap();
    }
    assert!(lanes.take_next().is_some());
    let mut left: Vec<u64> = lanes.drain().iter().map(|s| s.seq).collect();
    left.sort_unstable();
    assert_eq!(left.len(), 5);
    assert_eq!(lanes.waiting(), 0);
}

/// Run `probes` (flow, seq) through a prober of `flows` flows to `target` on loopback.
fn run(target: SocketAddr, flows: usize, probes: &[(u16, u64)]) -> (Vec<u16>, Vec<PingResult>) {
    let waker = Arc::new(Waker::new().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let mut p = TtlConnectProber::new(target, flows, Duration::from_secs(3), waker, stop).unwrap();
    for &(flow, seq) in probes {
        p.send(ProbeSpec {
            seq,
            target,
            ttl: Some(64),
            flow,
        });
    }
    let mut done = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    while p.in_flight() > 0 && Instant::now() < until {
        // As the driver does: each batch taken before the next wait.
        let mut batch = Vec::new();
        p.poll(until, &mut batch).unwrap();
        done.append(&mut batch);
    }
    (p.ports(), done)
}

#[test]
fn every_probe_of_a_flow_leaves_from_its_port_back_to_back_without_time_wait() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    // 3 flows, 4 probes each on the same 4-tuple: each must find it free (RST, no TIME_WAIT).
    let probes: Vec<(u16, u64)> = (0..12).map(|i| ((i % 3) as u16, i + 1)).collect();
    let (ports, done) = run(target, 3, &probes);
    assert_eq!(ports.len(), 3);
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "a port per flow: {ports:?}");
    assert_eq!(done.len(), 12);
    for r in &done {
        assert_eq!(r.status, Status::Reply, "probe {}: {:?}", r.seq, r.status);
        let flow = ((r.seq - 1) % 3) as usize;
        assert_eq!(
            r.local_port,
            Some(ports[flow]),
            "probe {} left from its flow's port",
            r.seq
        );
    }
    // The listener saw connections from exactly those ports.
    listener.set_nonblocking(true).unwrap();
    let mut seen = Vec::new();
    while let Ok((_, from)) = listener.accept() {
        seen.push(from.port());
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, distinct);
}

#[test]
fn a_closed_port_refuses_every_probe_of_a_flow_and_a_flow_out_of_range_is_an_error() {
    // A port bound and not listening: nothing accepts there.
    let held = std::net::TcpListener::bind("[::1]:0").unwrap();
    let target = held.local_addr().unwrap();
    drop(held);
    let (ports, done) = run(target, 1, &[(0, 1), (0, 2), (0, 3), (1, 4)]);
    assert_eq!(done.len(), 4);
    for r in done.iter().filter(|r| r.seq < 4) {
        assert_eq!(r.status, Status::Refused, "probe {}", r.seq);
        assert_eq!(r.local_port, Some(ports[0]));
    }
    let out = done.iter().find(|r| r.seq == 4).unwrap();
    assert!(
        matches!(&out.status, Status::Error(e) if e.contains("no flow 1")),
        "{:?}",
        out.status
    );
}
