//! The TCP header: a view over a whole header ([`Tcp`]), the start of one quoted in an ICMP
//! error or cut short ([`TcpPrefix`]), flags ([`Flags`]) and options ([`TcpOption`], [`TcpOptions`]).

/// Byte ranges of the TCP header's fields.
pub mod field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;

/// Why bytes are not a TCP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated;

fn u16_at(b: &[u8], r: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

fn u32_at(b: &[u8], r: std::ops::Range<usize>) -> u32 {
    u32::from_be_bytes([b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3]])
}

/// TCP flags (byte 13 of the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(pub u8);

impl Flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// A whole TCP header (options included) over `T`, payload after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tcp<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Tcp<T> {
    /// A view without checks: accessors may panic unless `check_len` passes.
    pub fn new_unchecked(buf: T) -> Tcp<T> {
        Tcp { buf }
    }

    /// A view of a header that is whole: 20 bytes at least, a data offset of 5 or more, and
    /// as many bytes as it says.
    pub fn new_checked(buf: T) -> Result<Tcp<T>, Truncated> {
        let t = Self::new_unchecked(buf);
        t.check_len()?;
        Ok(t)
    }

    /// Whether the buffer holds the whole header (see `new_checked`).
    pub fn check_len(&self) -> Result<(), Truncated> {
        let b = self.buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Truncated);
        }
        let len = self.header_len();
        if len < HEADER_LEN || len > b.len() {
            return Err(Truncated);
        }
        Ok(())
    }

    pub fn src_port(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::DST_PORT)
    }
    pub fn seq(&self) -> u32 {
        u32_at(self.buf.as_ref(), field::SEQ)
    }
    pub fn ack(&self) -> u32 {
        u32_at(self.buf.as_ref(), field::ACK)
    }
    /// The header's length from its data offset, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }
    pub fn flags(&self) -> Flags {
        Flags(self.buf.as_ref()[field::FLAGS])
    }
    pub fn window(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::WINDOW)
    }
    pub fn checksum(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::CHECKSUM)
    }
    /// The options' bytes.
    pub fn option_bytes(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// The options one by one (see [`OptionsIter`]).
    pub fn options(&self) -> OptionsIter<'_> {
        OptionsIter(self.option_bytes())
    }
    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Tcp<T> {
    pub fn set_seq(&mut self, seq: u32) {
        self.buf.as_mut()[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    }
    pub fn set_checksum(&mut self, sum: u16) {
        self.buf.as_mut()[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    }
    /// The options' bytes, to rewrite in place.
    pub fn option_bytes_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buf.as_mut()[HEADER_LEN..end]
    }
}

/// The start of a TCP header, as far as it goes: quoted in an ICMP error (RFC 792
/// guarantees only 8 bytes: the ports, bytes 0..4, and the sequence number, 4..8), or
/// captured cut short. The ports are always there; each later field only when the bytes
/// reach its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPrefix<'a> {
    buf: &'a [u8],
}

impl<'a> TcpPrefix<'a> {
    /// None when the bytes stop before the ports end.
    pub fn new_checked(buf: &'a [u8]) -> Option<TcpPrefix<'a>> {
        (buf.len() >= field::DST_PORT.end).then_some(TcpPrefix { buf })
    }
    pub fn src_port(&self) -> u16 {
        u16_at(self.buf, field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        u16_at(self.buf, field::DST_PORT)
    }
    pub fn seq(&self) -> Option<u32> {
        (self.buf.len() >= field::SEQ.end).then(|| u32_at(self.buf, field::SEQ))
    }
    pub fn ack(&self) -> Option<u32> {
        (self.buf.len() >= field::ACK.end).then(|| u32_at(self.buf, field::ACK))
    }
    pub fn flags(&self) -> Option<Flags> {
        self.buf.get(field::FLAGS).map(|&f| Flags(f))
    }
    /// The whole header, when the bytes hold it.
    pub fn whole(&self) -> Option<Tcp<&'a [u8]>> {
        Tcp::new_checked(self.buf).ok()
    }
}

/// Option kinds.
pub mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// One TCP option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOption<'a> {
    Nop,
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    /// SACK blocks, as (left, right) edges 8 bytes each.
    Sack(&'a [u8]),
    Timestamps {
        value: u32,
        echo: u32,
    },
    /// Another kind, or a known kind of the wrong length.
    Other {
        kind: u8,
        data: &'a [u8],
    },
}

/// The options of a header, one by one; stops at the end-of-list option, and at an option
/// whose length runs past the end or is under 2 (the rest cannot be read).
#[derive(Clone, Debug)]
pub struct OptionsIter<'a>(&'a [u8]);

impl<'a> Iterator for OptionsIter<'a> {
    type Item = TcpOption<'a>;

    fn next(&mut self) -> Option<TcpOption<'a>> {
        let (&k, rest) = self.0.split_first()?;
        match k {
            kind::END => {
                self.0 = &[];
                return None;
            }
            kind::NOP => {
                self.0 = rest;
                return Some(TcpOption::Nop);
            }
            _ => {}
        }
        let len = usize::from(*rest.first()?);
        if len < 2 || len > self.0.len() {
            self.0 = &[];
            return None;
        }
        let data = &self.0[2..len];
        self.0 = &self.0[len..];
        Some(match (k, data) {
            (kind::MSS, &[a, b]) => TcpOption::Mss(u16::from_be_bytes([a, b])),
            (kind::WINDOW_SCALE, &[s]) => TcpOption::WindowScale(s),
            (kind::SACK_PERMITTED, []) => TcpOption::SackPermitted,
            (kind::SACK, d) if d.len() % 8 == 0 => TcpOption::Sack(d),
            (kind::TIMESTAMPS, d) if d.len() == 8 => TcpOption::Timestamps {
                value: u32_at(d, 0..4),
                echo: u32_at(d, 4..8),
            },
            (kind, data) => TcpOption::Other { kind, data },
        })
    }
}

/// The options that say something about the path and the peer, parsed: what a middlebox
/// may rewrite (MSS clamping, stripped window scaling, SACK or timestamps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// (value, echo reply).
    pub timestamps: Option<(u32, u32)>,
    /// Options of other kinds (or known kinds of the wrong length), counted.
    pub others: u8,
}

impl TcpOptions {
    /// Parse an option list (the first of each kind counts).
    pub fn parse(bytes: &[u8]) -> TcpOptions {
        let mut o = TcpOptions::default();
        for opt in OptionsIter(bytes) {
            match opt {
                TcpOption::Nop | TcpOption::Sack(_) => {}
                TcpOption::Mss(m) => o.mss = o.mss.or(Some(m)),
                TcpOption::WindowScale(s) => o.window_scale = o.window_scale.or(Some(s)),
                TcpOption::SackPermitted => o.sack_permitted = true,
                TcpOption::Timestamps { value, echo } => {
                    o.timestamps = o.timestamps.or(Some((value, echo)))
                }
                TcpOption::Other { .. } => o.others = o.others.saturating_add(1),
            }
        }
        o
    }
}
