//! Test support: a seeded xorshift32 source of junk bytes, for the garbage tests of every
//! parser (packets, ICMP extensions, SYN answers, targets files). The same seed gives the
//! same bytes on every run.

/// A xorshift32 generator (Marsaglia, 2003).
pub struct Junk(u32);

impl Junk {
    /// A generator seeded with `seed` (not 0: xorshift stays at 0).
    pub fn new(seed: u32) -> Junk {
        assert_ne!(seed, 0, "a xorshift seed of 0 gives only zeros");
        Junk(seed)
    }

    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// `len` junk bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u32() as u8).collect()
    }

    /// `len` bytes drawn from `alphabet`.
    pub fn from(&mut self, alphabet: &[u8], len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| alphabet[(self.next_u32() % alphabet.len() as u32) as usize])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Junk;

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_every_byte_value_turns_up() {
        let a = Junk::new(0x9e37_79b9).bytes(4096);
        assert_eq!(a, Junk::new(0x9e37_79b9).bytes(4096));
        assert_ne!(a, Junk::new(0x1234_5678).bytes(4096));
        let mut seen = [false; 256];
        a.iter().for_each(|&b| seen[usize::from(b)] = true);
        assert!(seen.iter().all(|&s| s));
        assert!(Junk::new(7)
            .from(b"ab", 100)
            .iter()
            .all(|b| b"ab".contains(b)));
    }
}
