//! The SYN prober's per-packet work allocates nothing: re-stamping the next SYN, queueing it
//! in the outbox for the next `sendmmsg`, reading a captured answer (our SYN leaving, a
//! SYN-ACK, an RST) from the receive ring's frames and through the packet views.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tcpping_diag::probe::capture::ring::{Frames, FRAME, TP_STATUS_USER};
use tcpping_diag::probe::syn::sockets::{Outbox, BATCH};
use tcpping_diag::probe::syn::{build_syn, classify, restamp, Seen, SynFields};

/// The system allocator, counting the allocations of each thread (the test harness's own
/// threads allocate when they like).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The SYN both tests build.
fn fields() -> SynFields {
    SynFields {
        src: "10.0.0.1:40000".parse().unwrap(),
        dst: "10.0.0.2:443".parse().unwrap(),
        seq: 1,
        ip_id: 1,
        ttl: 64,
    }
}

#[test]
fn restamping_and_classifying_allocate_nothing() {
    // The captured TCP segments: (outgoing, bytes).
    let packets: Vec<(bool, Vec<u8>)> = include_str!("fixtures/syn-captured.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| !f[0].contains("icmp"))
        .map(|f| (f[1] == "out", unhex(f[2])))
        .collect();
    let mut pkt = [0u8; 128];
    let len = build_syn(&mut pkt, &fields()).unwrap();
    let before = allocations();
    let mut seen = 0;
    for n in 0..1000u32 {
        restamp(&mut pkt[..len], n, n as u16, 64);
        for (out, b) in &packets {
            if let Some(Seen::Syn { .. } | Seen::Answer { .. }) = classify(b, *out) {
                seen += 1;
            }
        }
    }
    assert_eq!(allocations(), before, "allocations");
    drop(std::hint::black_box(vec![0u8; 16]));
    assert_eq!(allocations(), before + 1, "the count counts");
    assert!(seen >= 1000 * 5, "{seen}");
}

#[test]
fn the_batched_path_allocates_nothing() {
    let syn = {
        let mut pkt = [0u8; 128];
        let len = build_syn(&mut pkt, &fields()).unwrap();
        pkt[..len].to_vec()
    };
    let to = "10.0.0.2".parse().unwrap();
    // A ring of 8 frames as the kernel fills them: status, snap length, packet offset.
    let mut mem = vec![0u128; 8 * FRAME / 16];
    let base = mem.as_mut_ptr() as *mut u8;
    let fill = |i: usize| {
        // SAFETY: frame i of the 8 in `mem`.
        let f = unsafe { std::slice::from_raw_parts_mut(base.add(i * FRAME), FRAME) };
        f[0..4].copy_from_slice(&TP_STATUS_USER.to_ne_bytes());
        f[8..12].copy_from_slice(&(syn.len() as u32).to_ne_bytes());
        f[14..16].copy_from_slice(&80u16.to_ne_bytes());
        f[16..20].copy_from_slice(&1u32.to_ne_bytes());
        f[42] = 4; // leaving
        f[80..80 + syn.len()].copy_from_slice(&syn);
    };
    // SAFETY: `mem` is 8 frames, 16-aligned, alive while `frames` is used.
    let mut frames = unsafe { Frames::new(base, 8) };
    let mut out = Outbox::default();
    let mut seen = 0;
    let before = allocations();
    for round in 0..100u16 {
        for k in 0..BATCH as u16 {
            assert!(out.push(&syn, to, (40000, u32::from(round * 64 + k))));
        }
        assert!(!out.push(&syn, to, (1, 1)), "full");
        out.clear();
        for i in 0..8 {
            fill(i);
        }
        frames.drain(8, &mut |p, rx| {
            if let Some(Seen::Syn { .. }) = classify(p, rx.outgoing) {
                seen += 1;
            }
        });
    }
    assert_eq!(allocations(), before, "allocations");
    assert_eq!(seen, 800);
}
