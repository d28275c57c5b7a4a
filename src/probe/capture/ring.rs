//! The packet socket's receive ring (`PACKET_RX_RING`, `TPACKET_V2`): the kernel writes each
//! captured packet into a frame of memory we share with it, with its timestamp and
//! direction, and we read it there: no system call per packet, and none at all while
//! packets keep coming (`poll` only when the ring is empty).
//!
//! TPACKET_V2, not V3: a V3 block reaches us only when it is full or its timer (≥ 1 ms)
//! runs out, which would hold a lone answer back; a V2 frame is ours as soon as the kernel
//! marks it (libpcap's immediate mode makes the same choice).
//!
//! A frame (linux/if_packet.h): `struct tpacket2_hdr` (its status word first), then at
//! `TPACKET_ALIGN(sizeof hdr)` the `struct sockaddr_ll` (the packet type: leaving or
//! arriving), the packet at `tp_net`. The frames are parsed as bytes ([`parse_frame`]), with
//! every offset the kernel wrote checked against the frame: a frame that points outside
//! itself is skipped, never read out of bounds.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::Duration;

use super::{Received, PACKET_OUTGOING, SNAP};

/// linux/if_packet.h
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_TIMESTAMP: libc::c_int = 17;
const TPACKET_V2: libc::c_int = 1;
const SOF_TIMESTAMPING_SOFTWARE: libc::c_int = 1 << 4;
/// `tp_status`: the frame is ours to read (else the kernel's to fill).
pub const TP_STATUS_USER: u32 = 1;
pub const TP_STATUS_KERNEL: u32 = 0;

/// Offsets in a frame (`struct tpacket2_hdr`, then `struct sockaddr_ll`).
pub mod field {
    pub const STATUS: usize = 0;
    pub const SNAPLEN: usize = 8;
    pub const NET: usize = 14;
    pub const SEC: usize = 16;
    pub const NSEC: usize = 20;
    /// `sockaddr_ll` starts at `TPACKET_ALIGN(sizeof(struct tpacket2_hdr))` = 32;
    /// `sll_pkttype` is its byte 10.
    pub const PKTTYPE: usize = 32 + 10;
    /// The header and address end here: a packet never starts before.
    pub const HEADER_END: usize = 32 + 20;
}

/// Frame size: the headers, the alignment the kernel adds before the packet, and `SNAP`
/// bytes of packet, rounded to a power of two (frames must tile the blocks).
pub const FRAME: usize = 1024;
/// Block size (a multiple of the page size and of `FRAME`): a ring is a whole number of
/// blocks.
const BLOCK: usize = 1 << 16;

/// One frame as the kernel filled it: the packet's place in the frame, and what it says of
/// it. None: the frame points outside itself.
pub fn parse_frame(frame: &[u8]) -> Option<(std::ops::Range<usize>, Received)> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(frame.get(at..at + 4)?.try_into().ok()?))
    };
    let snaplen = usize::try_from(u32_at(field::SNAPLEN)?).ok()?;
    let net = usize::from(u16::from_ne_bytes(
        frame.get(field::NET..field::NET + 2)?.try_into().ok()?,
    ));
    let end = net.checked_add(snaplen)?;
    if net < field::HEADER_END || end > frame.len() {
        return None;
    }
    let (sec, nsec) = (u32_at(field::SEC)?, u32_at(field::NSEC)?);
    // The kernel's stamp of the packet at the device (the skb's, else the time it was
    // copied into the ring, right after): never our read's.
    let at = (sec > 0 && nsec < 1_000_000_000).then(|| Duration::new(u64::from(sec), nsec));
    let rx = Received {
        len: snaplen.min(SNAP as usize),
        outgoing: *frame.get(field::PKTTYPE)? == PACKET_OUTGOING,
        at,
    };
    Some((net..net + rx.len, rx))
}

/// Frames of shared memory, walked in order.
pub struct Frames {
    base: *mut u8,
    frames: usize,
    /// The next frame to look at.
    next: usize,
}

impl Frames {
    /// Walk `frames` frames of `FRAME` bytes at `base`.
    ///
    /// # Safety
    /// `base` points to `frames * FRAME` bytes, aligned to 16, valid for as long as the
    /// `Frames` is used; a frame's bytes other than its status word are written by no one
    /// else while its status says it is ours.
    pub unsafe fn new(base: *mut u8, frames: usize) -> Frames {
        Frames {
            base,
            frames,
            next: 0,
        }
    }

    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: frame i is inside the region (`new`'s contract); its first 4 bytes are
        // aligned (frames start at multiples of FRAME from a 16-aligned base).
        unsafe { &*(self.base.add(i * FRAME + field::STATUS) as *const AtomicU32) }
    }

    /// Hand at most `max` filled frames' packets to `f` in order, giving each frame back to
    /// the kernel after; how many frames were ours (malformed ones skipped, not shown).
    pub fn drain(&mut self, max: usize, f: &mut dyn FnMut(&[u8], Received)) -> usize {
        let mut n = 0;
        while n < max {
            let i = self.next;
            if self.status(i).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the frame is ours until its status is given back (`new`'s contract).
            let frame = unsafe { std::slice::from_raw_parts(self.base.add(i * FRAME), FRAME) };
            if let Some((at, rx)) = parse_frame(frame) {
                f(&frame[at], rx);
            }
            fence(Ordering::Release);
            self.status(i).store(TP_STATUS_KERNEL, Ordering::Release);
            self.next = (i + 1) % self.frames;
            n += 1;
        }
        n
    }
}

/// The ring of a packet socket: the mapping, unmapped on drop.
pub struct Ring {
    frames: Frames,
    len: usize,
}

// SAFETY: the mapping belongs to the Ring alone; moving it to another thread moves that
// ownership.
unsafe impl Send for Ring {}

impl Ring {
    /// Give packet socket `fd` a receive ring of about `bytes` (whole blocks, at least one)
    /// and map it. Packets already queued on the socket stay there (read them first).
    pub fn open(fd: RawFd, bytes: usize) -> io::Result<Ring> {
        let blocks = bytes.div_ceil(BLOCK).max(1);
        use crate::net::setsockopt_int;
        setsockopt_int(fd, libc::SOL_PACKET, PACKET_VERSION, TPACKET_V2)?;
        // The skb's software stamp (the one SO_TIMESTAMPNS and tcpdump report).
        setsockopt_int(
            fd,
            libc::SOL_PACKET,
            PACKET_TIMESTAMP,
            SOF_TIMESTAMPING_SOFTWARE,
        )?;
        let req = libc::tpacket_req {
            tp_block_size: BLOCK as u32,
            tp_block_nr: blocks as u32,
            tp_frame_size: FRAME as u32,
            tp_frame_nr: (BLOCK / FRAME * blocks) as u32,
        };
        // SAFETY: req is a valid tpacket_req for the call.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                PACKET_RX_RING,
                &req as *const libc::tpacket_req as *const libc::c_void,
                std::mem::size_of::<libc::tpacket_req>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let len = BLOCK * blocks;
        // SAFETY: mapping the ring the kernel just made for fd, shared, of its size.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the mapping is len bytes, page-aligned, ours until munmap in drop; the
        // kernel writes a frame only while its status is TP_STATUS_KERNEL.
        let frames = unsafe { Frames::new(base as *mut u8, len / FRAME) };
        Ok(Ring { frames, len })
    }

    pub fn drain(&mut self, max: usize, f: &mut dyn FnMut(&[u8], Received)) -> usize {
        self.frames.drain(max, f)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping made in `open`, once.
        unsafe {
            libc::munmap(self.frames.base as *mut libc::c_void, self.len);
        }
    }
}
