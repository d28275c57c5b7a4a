//! System networking helpers below every probe, the server and the commands, one concern a
//! file (every item is reached as `crate::net::NAME`):
//!
//! - `wait`: [`poll`] on descriptors with a deadline ([`remaining`]), and the [`Waker`] that
//!   ends a wait from a signal handler or another thread.
//! - `socket`: socket options and control messages libc-level ([`setsockopt_int`],
//!   [`set_recverr`], [`recvmsg_cmsgs`], [`recvmsg_named`]).
//! - `addr`: addresses ([`source_address_for`]).
//! - `host`: this host ([`hostname`], [`raise_open_files`]).
//! - `text`: the echo protocol's text on the client side ([`wall_timestamp`], [`escape_bytes`]).
//! - here: an I/O error in words ([`describe_io`]).
//!
//! The server's own text (how its log shows a peer) is in `server::text`.

use std::io;

mod addr;
mod host;
mod socket;
mod text;
mod wait;

pub use addr::source_address_for;
pub use host::{hostname, raise_open_files};
pub use socket::{recvmsg_cmsgs, recvmsg_named, set_recverr, setsockopt_int};
pub use text::{escape_bytes, wall_timestamp};
pub use wait::{poll, remaining, wake, Ready, Waker};

/// An io::Error in words, without Rust's "(os error N)" suffix: "No route to host".
pub fn describe_io(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_in_words() {
        let e = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(describe_io(&e), "No route to host");
    }
}
