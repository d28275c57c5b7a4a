//! The size of a ping's request (`-s`) and its Don't Fragment behaviour (`-M`).
//!
//! A request of `SIZE` bytes is the protocol's line padded with `x` before its newline:
//! `ping 7 1764460800.123456 xxxx…xxxx\n`, `SIZE` bytes in all. The server echoes the line
//! uppercased (`… XXXX…`), as any other request: the framing is unchanged, so tcpping-diag's
//! server (and any server that echoes a line) answers it. A line that is already longer
//! than `SIZE` (a small `SIZE` and a long sequence number) is sent whole.
//!
//! `-M` maps to `IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER` on every ping's socket. For TCP the
//! kernel always does path MTU discovery on its own segments; what the option decides is
//! whether they carry DF (IPv4) and whether a "packet too big" lowers the segment size.

use std::io;
use std::os::fd::RawFd;

use crate::net;

/// Smallest `-s`: the protocol's line with a short sequence number is about 30 bytes.
pub const MIN_SIZE: usize = 32;
/// Largest `-s`: a jumbo frame's payload. The server accepts lines this long.
pub const MAX_SIZE: usize = 9000;
/// The size of the small control ping that tells a black hole from a dead path (and of
/// the sizes `--pmtu` starts from): as ping's default packet, 64 bytes.
pub const SMALL: usize = 64;

/// `-M`: Don't Fragment, as `IP_MTU_DISCOVER` names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pmtud {
    /// `IP_PMTUDISC_DO`: DF on every segment, always; a "packet too big" lowers the
    /// segment size. The default: a smaller link on the path shows (as an ICMP error, or as
    /// a black hole) instead of being hidden by fragmentation, and TCP needs no fragments.
    #[default]
    Do,
    /// `IP_PMTUDISC_WANT`: the kernel's own default; as `do` for TCP, except that DF is
    /// cleared when the route's MTU is locked (`ip route … mtu lock N`).
    Want,
    /// `IP_PMTUDISC_DONT`: no DF (IPv4: routers fragment large segments; "packet too big"
    /// is ignored). IPv6 routers never fragment: large segments still meet the small link.
    Dont,
}

impl Pmtud {
    /// The name `-M` takes and the start event shows.
    pub fn name(self) -> &'static str {
        match self {
            Pmtud::Do => "do",
            Pmtud::Want => "want",
            Pmtud::Dont => "dont",
        }
    }

    /// The socket option's value (the same numbers for IPv4 and IPv6).
    fn value(self) -> libc::c_int {
        match self {
            Pmtud::Do => libc::IP_PMTUDISC_DO,
            Pmtud::Want => libc::IP_PMTUDISC_WANT,
            Pmtud::Dont => libc::IP_PMTUDISC_DONT,
        }
    }
}

/// Set `IP_MTU_DISCOVER` (`IPV6_MTU_DISCOVER` for `v6`) on a socket.
pub fn set_pmtud(fd: RawFd, v6: bool, how: Pmtud) -> io::Result<()> {
    let (level, opt) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)
    };
    net::setsockopt_int(fd, level, opt, how.value())
}

/// The path MTU the kernel holds for a connected socket (`IP_MTU` / `IPV6_MTU`): lowered
/// by a "packet too big".
pub fn path_mtu(fd: RawFd, v6: bool) -> Option<usize> {
    let (level, opt) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU)
    };
    getsockopt_int(fd, level, opt).and_then(|v| usize::try_from(v).ok())
}

/// An int socket option (None: the call failed).
fn getsockopt_int(fd: RawFd, level: libc::c_int, opt: libc::c_int) -> Option<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid for the call and sized for an int.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(v)
}

/// The bytes a one-segment request of `size` takes on the wire: IP and TCP headers, with
/// the timestamps option Linux sends (12 bytes).
pub fn on_wire(size: usize, v6: bool) -> usize {
    size + if v6 { 40 } else { 20 } + 32
}

/// The request of ping `seq`, stamped `ts`, padded to `size` bytes (None: unpadded).
pub fn request(seq: u64, ts: &str, size: Option<usize>) -> Vec<u8> {
    let mut line = format!("ping {seq} {ts}").into_bytes();
    if let Some(size) = size {
        // The line, a space, the padding, the newline: `size` bytes in all.
        let pad = size.saturating_sub(line.len() + 2);
        if pad > 0 {
            line.push(b' ');
            line.resize(line.len() + pad, b'x');
        }
    }
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::connect::judge_reply;
    use crate::probe::Status;

    #[test]
    fn request_is_padded_to_size_and_echoes() {
        let ts = "1764460800.123456";
        for size in [MIN_SIZE, SMALL, 1400, MAX_SIZE] {
            let r = request(7, ts, Some(size));
            assert_eq!(r.len(), size, "size {size}");
            assert!(r.starts_with(b"ping 7 1764460800.123456"));
            assert_eq!(r.last(), Some(&b'\n'));
            assert_eq!(r.iter().filter(|&&c| c == b'\n').count(), 1);
            // The server's echo (the line uppercased) is a reply.
            let echo = r.to_ascii_uppercase();
            assert_eq!(judge_reply(&r, &echo), Some(Status::Reply));
            // Half of it is not yet.
            assert_eq!(judge_reply(&r, &echo[..size / 2]), None);
        }
        // Unpadded: the protocol's line as before.
        assert_eq!(request(7, ts, None), b"ping 7 1764460800.123456\n");
        // Too small for the line: the line whole, no padding.
        let long = request(123_456_789_012, ts, Some(MIN_SIZE));
        assert_eq!(long, b"ping 123456789012 1764460800.123456\n");
        // One byte short of a space and a pad: no dangling space either.
        let exact = request(7, ts, Some(26));
        assert_eq!(exact, b"ping 7 1764460800.123456\n");
    }

    #[test]
    fn pmtud_maps_to_the_kernel_values() {
        assert_eq!(Pmtud::default(), Pmtud::Do);
        assert_eq!(Pmtud::Do.value(), 2);
        assert_eq!(Pmtud::Want.value(), 1);
        assert_eq!(Pmtud::Dont.value(), 0);
        let names: Vec<_> = [Pmtud::Do, Pmtud::Want, Pmtud::Dont]
            .map(Pmtud::name)
            .to_vec();
        assert_eq!(names, ["do", "want", "dont"]);
    }

    #[test]
    fn pmtud_is_set_on_sockets_and_read_back() {
        use std::os::fd::AsRawFd;
        let get = |fd, level, opt| getsockopt_int(fd, level, opt).unwrap();
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        for how in [Pmtud::Dont, Pmtud::Want, Pmtud::Do] {
            set_pmtud(v4.as_raw_fd(), false, how).unwrap();
            let got = get(v4.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MTU_DISCOVER);
            assert_eq!(got, how.value());
        }
        if let Ok(v6) = std::net::TcpListener::bind("[::1]:0") {
            set_pmtud(v6.as_raw_fd(), true, Pmtud::Dont).unwrap();
            let got = get(v6.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER);
            assert_eq!(got, libc::IP_PMTUDISC_DONT);
        }
    }
}
