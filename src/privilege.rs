//! Privileges: raw sockets need root or CAP_NET_RAW; once they are open, drop everything.

use caps::CapSet;

/// The one line printed when raw sockets cannot be opened.
pub const NO_RAW_NOTICE: &str =
    "tcpping-diag: ICMP capture off: raw sockets need root or CAP_NET_RAW \
(run with sudo, or once: sudo setcap cap_net_raw+ep \"$(command -v tcpping-diag)\"); \
errors during the handshake are still reported from the kernel's error queue";

/// The one line when `--syn` cannot open its raw sockets (exit status 2, nothing sent).
pub const NO_RAW_SYN: &str =
    "--syn needs CAP_NET_RAW to send hand-built SYNs and read the answers: \
run it as root (sudo), or once: sudo setcap cap_net_raw+ep \"$(command -v tcpping-diag)\"";

/// Drop every capability of this thread (and so of threads started after it), as iputils
/// ping does once its raw socket is open: the pinging itself runs with none.
pub fn drop_all() -> Result<(), caps::errors::CapsError> {
    // Ambient first (it must be a subset of permitted and inheritable), then the rest.
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Effective)?;
    caps::clear(None, CapSet::Permitted)?;
    caps::clear(None, CapSet::Inheritable)?;
    Ok(())
}
