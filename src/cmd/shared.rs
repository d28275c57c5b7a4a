//! What every command shares: stopping on signals, kernel receive timestamps in effect
//! before the first probe, and writing to a standard output that may be a closed pipe.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::net::Waker;
use crate::timing::{InEffect, RxStamping};

/// How long a run waits at start for the kernel to stamp received packets.
const STAMPS_ON_WITHIN: Duration = Duration::from_millis(100);

/// Before the first probe: wait until the kernel stamps arriving packets (see
/// `timing::RxStamping`), at most `STAMPS_ON_WITHIN`; with -v, say when that could not be
/// confirmed. (Probes whose packets pass earlier fall back to the next clock.)
pub fn stamps_on(stamping: Option<&RxStamping>, verbose: bool) {
    let Some(on) = stamping else {
        return;
    };
    if let InEffect::Unconfirmed(why) = on.wait_in_effect(STAMPS_ON_WITHIN) {
        if verbose {
            eprintln!(
                "tcpping-diag: kernel receive timestamps not confirmed on ({why}): probes \
                 whose packets pass before they are on are timed by the next clock \
                 (connect_clock / rtt_clock say which)"
            );
        }
    }
}

/// Write to stdout: Ok(false) when stdout is a closed pipe (`| head`), which ends a command
/// quietly, as ripgrep does; other write errors name the operation.
pub fn say(text: std::fmt::Arguments) -> Result<bool, Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    written(out.write_fmt(text).and_then(|()| out.flush()))
}

/// The result of writing output: Ok(false) when stdout is a closed pipe (`| head`), which
/// ends a command quietly; other write errors name the operation.
pub fn written(r: std::io::Result<()>) -> Result<bool, Error> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::io("write output", e)),
    }
}

/// Stop on SIGINT/SIGTERM: set `stop` and wake whoever waits on `waker`.
pub fn on_signals(stop: &Arc<AtomicBool>, waker: &Waker) -> Result<(), Error> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        on_signal(sig, stop, waker)?;
    }
    Ok(())
}

/// On signal `sig` (SIGINT, SIGTERM, SIGHUP): set `flag` and wake whoever waits on `waker`.
pub fn on_signal(sig: i32, flag: &Arc<AtomicBool>, waker: &Waker) -> Result<(), Error> {
    signal_hook::flag::register(sig, Arc::clone(flag))
        .map_err(|e| Error::io("install signal handler", e))?;
    let tx = waker
        .sender()
        .map_err(|e| Error::io("install signal handler", e))?;
    signal_hook::low_level::pipe::register(sig, tx)
        .map_err(|e| Error::io("install signal handler", e))?;
    Ok(())
}
