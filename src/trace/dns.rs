//! Reverse DNS for `--resolve`: getnameinfo(3) with NI_NAMEREQD, once per address (cached).
//! Off by default: a trace never waits on DNS unless asked. The live view asks through
//! [`Lookups`], which looks names up on a thread of its own: the view never waits.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};

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

/// Names looked up on a thread of their own when enabled: asking never waits; an address's
/// name is there at a later ask once found.
pub struct Lookups {
    ask: Option<Sender<IpAddr>>,
    asked: HashSet<IpAddr>,
    found: Arc<Mutex<HashMap<IpAddr, Option<String>>>>,
}

impl Lookups {
    pub fn new(enabled: bool) -> Lookups {
        let found = Arc::new(Mutex::new(HashMap::new()));
        let ask = enabled.then(|| {
            let (tx, rx) = mpsc::channel::<IpAddr>();
            let found = Arc::clone(&found);
            // Not joined: it ends when the sender is dropped and its lookup returns.
            std::thread::spawn(move || {
                for a in rx {
                    let name = reverse(a);
                    found
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(a, name);
                }
            });
            tx
        });
        Lookups {
            ask,
            asked: HashSet::new(),
            found,
        }
    }

    /// The name of `a` if found already (None: lookups off, not found yet, or it has none);
    /// the first ask starts its lookup.
    pub fn name(&mut self, a: IpAddr) -> Option<String> {
        let ask = self.ask.as_ref()?;
        if self.asked.insert(a) {
            let _ = ask.send(a);
            return None;
        }
        let found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        found.get(&a).cloned().flatten()
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

    #[test]
    fn lookups_answer_at_once_and_find_the_name_later() {
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(Lookups::new(false).name(a), None);
        let mut l = Lookups::new(true);
        assert_eq!(l.name(a), None, "the first ask starts the lookup");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let name = loop {
            if let Some(n) = l.name(a) {
                break n;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no name for 127.0.0.1"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(Some(name), Names::new(true).name(a));
    }
}
