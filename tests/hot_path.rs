//! The SYN prober's per-packet work allocates nothing: re-stamping the next SYN, and reading
//! a captured answer (our SYN leaving, a SYN-ACK, an RST) through the packet views.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

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
    let f = SynFields {
        src: "10.0.0.1:40000".parse().unwrap(),
        dst: "10.0.0.2:443".parse().unwrap(),
        seq: 1,
        ip_id: 1,
        ttl: 64,
    };
    let len = build_syn(&mut pkt, &f).unwrap();
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
