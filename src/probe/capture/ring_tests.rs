//! The receive ring's frames, laid out as the kernel writes them (linux/if_packet.h,
//! `tpacket_rcv` for a SOCK_DGRAM socket: the packet at 80), walked without a kernel: real
//! captured packets, frames still the kernel's, and frames whose header points outside them.

use std::time::Duration;

use super::ring::{field, parse_frame, Frames, FRAME, TP_STATUS_KERNEL, TP_STATUS_USER};
use super::{Received, PACKET_OUTGOING, SNAP};

/// Where `tpacket_rcv` puts a SOCK_DGRAM packet: TPACKET_ALIGN(52 + 16).
const NET: usize = 80;

/// A frame of the ring: `pkt` at `net`, stamped `sec`.`nsec`, with `status`.
fn frame(buf: &mut [u8], status: u32, pkt: &[u8], net: usize, pkttype: u8, ts: (u32, u32)) {
    buf[field::STATUS..field::STATUS + 4].copy_from_slice(&status.to_ne_bytes());
    buf[4..8].copy_from_slice(&(pkt.len() as u32).to_ne_bytes());
    buf[field::SNAPLEN..field::SNAPLEN + 4].copy_from_slice(&(pkt.len() as u32).to_ne_bytes());
    buf[12..14].copy_from_slice(&(net as u16).to_ne_bytes());
    buf[field::NET..field::NET + 2].copy_from_slice(&(net as u16).to_ne_bytes());
    buf[field::SEC..field::SEC + 4].copy_from_slice(&ts.0.to_ne_bytes());
    buf[field::NSEC..field::NSEC + 4].copy_from_slice(&ts.1.to_ne_bytes());
    buf[field::PKTTYPE] = pkttype;
    if net + pkt.len() <= buf.len() {
        buf[net..net + pkt.len()].copy_from_slice(pkt);
    }
}

/// Memory for `n` frames, 16-aligned as the kernel's mapping is (page-aligned).
fn region(n: usize) -> Vec<u128> {
    vec![0u128; n * FRAME / 16]
}

fn bytes(r: &mut [u128]) -> &mut [u8] {
    // SAFETY: u128s are plain bytes; the slice covers exactly the vector's memory.
    unsafe { std::slice::from_raw_parts_mut(r.as_mut_ptr() as *mut u8, r.len() * 16) }
}

fn real_syn() -> Vec<u8> {
    crate::probe::syn::tests::fixture("v4_syn").1
}

#[test]
fn a_frame_gives_its_packet_its_direction_and_its_stamp() {
    let syn = real_syn();
    let mut f = vec![0u8; FRAME];
    frame(
        &mut f,
        TP_STATUS_USER,
        &syn,
        NET,
        PACKET_OUTGOING,
        (1_700_000_000, 5),
    );
    let (at, rx) = parse_frame(&f).unwrap();
    assert_eq!(&f[at], &syn[..]);
    assert_eq!(
        rx,
        Received {
            len: syn.len(),
            outgoing: true,
            at: Some(Duration::new(1_700_000_000, 5)),
        }
    );
    frame(&mut f, TP_STATUS_USER, &syn, NET, 0, (0, 0));
    let (_, rx) = parse_frame(&f).unwrap();
    assert!(!rx.outgoing, "arriving");
    assert_eq!(rx.at, None, "no stamp");
    frame(&mut f, TP_STATUS_USER, &syn, NET, 0, (1, 1_000_000_000));
    assert_eq!(
        parse_frame(&f).unwrap().1.at,
        None,
        "nanoseconds out of range"
    );
}

#[test]
fn a_frame_that_points_outside_itself_is_refused() {
    let syn = real_syn();
    let mut f = vec![0u8; FRAME];
    // The packet would run past the frame's end.
    frame(&mut f, TP_STATUS_USER, &syn, FRAME - 10, 0, (1, 0));
    assert_eq!(parse_frame(&f), None);
    // The packet would start inside the frame's own header.
    frame(&mut f, TP_STATUS_USER, &syn, 8, 0, (1, 0));
    assert_eq!(parse_frame(&f), None);
    // A length that overflows.
    frame(&mut f, TP_STATUS_USER, &syn, NET, 0, (1, 0));
    f[field::SNAPLEN..field::SNAPLEN + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
    assert_eq!(parse_frame(&f), None);
    // A frame cut short (shorter than its header).
    assert_eq!(parse_frame(&f[..20]), None);
    assert_eq!(parse_frame(&[]), None);
    // A packet longer than the snap length is cut to it.
    let big = vec![0x45u8; SNAP as usize + 100];
    frame(&mut f, TP_STATUS_USER, &big, NET, 0, (1, 0));
    let (at, rx) = parse_frame(&f).unwrap();
    assert_eq!((at.len(), rx.len), (SNAP as usize, SNAP as usize));
}

#[test]
fn the_ring_is_read_in_order_up_to_the_kernels_frames_and_wraps() {
    let syn = real_syn();
    let mut mem = region(4);
    {
        let b = bytes(&mut mem);
        for (i, f) in b.chunks_mut(FRAME).enumerate().take(3) {
            let mut p = syn.clone();
            p[4] = i as u8; // IPv4 ID: tells the frames apart
            frame(f, TP_STATUS_USER, &p, NET, 0, (10, i as u32));
        }
        // Frame 1 is garbage (it points outside itself): skipped, and given back.
        b[FRAME + field::NET..FRAME + field::NET + 2].copy_from_slice(&2000u16.to_ne_bytes());
    }
    // SAFETY: the region is 4 frames, 16-aligned, alive while `frames` is used.
    let mut frames = unsafe { Frames::new(bytes(&mut mem).as_mut_ptr(), 4) };
    let mut seen = Vec::new();
    let mut take = |p: &[u8], rx: Received| seen.push((p[4], rx.at));
    assert_eq!(frames.drain(2, &mut take), 2, "at most max");
    assert_eq!(
        frames.drain(10, &mut take),
        1,
        "then up to the kernel's frame"
    );
    assert_eq!(frames.drain(10, &mut take), 0, "none left");
    assert_eq!(
        seen,
        [
            (0, Some(Duration::new(10, 0))),
            (2, Some(Duration::new(10, 2)))
        ]
    );
    let b = bytes(&mut mem);
    for i in 0..4 {
        let st = u32::from_ne_bytes(b[i * FRAME..i * FRAME + 4].try_into().unwrap());
        assert_eq!(st, TP_STATUS_KERNEL, "frame {i} given back");
    }
    // The kernel fills frames 3 and 0 (wrapping): read in that order.
    let mut p = syn.clone();
    p[4] = 3;
    frame(
        &mut b[3 * FRAME..4 * FRAME],
        TP_STATUS_USER,
        &p,
        NET,
        0,
        (11, 0),
    );
    p[4] = 4;
    frame(&mut b[..FRAME], TP_STATUS_USER, &p, NET, 0, (12, 0));
    let mut ids = Vec::new();
    assert_eq!(frames.drain(10, &mut |p: &[u8], _| ids.push(p[4])), 2);
    assert_eq!(ids, [3, 4]);
}
