//! Reverse DNS for `--resolve`: getnameinfo(3) with NI_NAMEREQD, once per address (cached).
//! Off by default: a trace never waits on DNS unless asked.

use std::collections::HashMap;
use std::ffi::CStr;
use std::net::{IpAddr, SocketAddr};

use socket2::SockAddr;

/// Names of addresses, looked up once each when enabled.
pub struct Names {
    enabled: bool,
    cache: HashMap<IpAddr, Option<String>>,
}

impl Names {
    pub fn new(enabled: bool) -> Names {
        Names {
            enabled,
            cache: HashMap::new(),
        }
    }

    /// The name of `a` (None: lookups off, or it has none).
    pub fn name(&mut self, a: IpAddr) -> Option<String> {
        if !self.enabled {
            return None;
        }
        self.cache.entry(a).or_insert_with(|| reverse(a)).clone()
    }
}

/// One reverse lookup: the name, or None when the address has none (or the lookup failed).
pub fn reverse(a: IpAddr) -> Option<String> {
    let sa = SockAddr::from(SocketAddr::new(a, 0));
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: sa points to a valid sockaddr of sa.len() bytes; host is writable for its
    // length; the service buffer is null with length 0.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo NUL-terminates within the buffer on success.
    let name = unsafe { CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_means_no_lookup() {
        let mut n = Names::new(false);
        assert_eq!(n.name("127.0.0.1".parse().unwrap()), None);
        assert!(n.cache.is_empty());
    }

    #[test]
    fn loopback_has_a_name_and_it_is_cached() {
        // /etc/hosts names 127.0.0.1 on every system this runs on (localhost).
        let mut n = Names::new(true);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let name = n.name(a).expect("127.0.0.1 has a name in /etc/hosts");
        assert!(!name.is_empty());
        assert_eq!(n.cache.get(&a), Some(&Some(name)));
    }
}
