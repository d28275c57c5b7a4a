//! Text on the echo protocol's lines, client side: the timestamp a ping request carries, and
//! bytes from the network (an unexpected reply) made printable on one line.

/// Microseconds since the Unix epoch as `secs.micros`, the timestamp in a ping request.
pub fn wall_timestamp() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

/// Make bytes from the network printable on one line.
pub fn escape_bytes(b: &[u8]) -> String {
    String::from_utf8_lossy(b).escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_binary() {
        assert_eq!(escape_bytes(b"a\n\x00\xff"), "a\\n\\0\u{fffd}");
    }
}
