//! How the server's log writes a peer: as the original Python server did.

use std::net::SocketAddr;

/// Show an address as the original Python server did: ('127.0.0.1', 34567).
pub fn python_addr(a: &SocketAddr) -> String {
    format!("('{}', {})", a.ip(), a.port())
}
