//! What each command does: `main` calls [`run`], which parses the flags, runs the command
//! and maps its result to an exit status.

mod demo;
mod multi;
pub mod ping;
mod serve;
pub mod trace;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::net::Waker;

pub use ping::ping;
pub use serve::serve;

/// Parse the command line, run, and return the exit status: 0 when any ping was answered
/// (or the server stopped cleanly), 1 when no ping was, 2 on a usage or setup error.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        Some(Command::Serve(args)) => args.into_config().and_then(|cfg| serve(cfg).map(|()| 0)),
        Some(Command::Demo) => demo::demo(),
        Some(Command::Report(args)) => crate::report::run(args),
        Some(Command::Generate(args)) => crate::manual::generate(&args).and_then(|files| {
            for f in files {
                if !say(format_args!("{}\n", f.display()))? {
                    break;
                }
            }
            Ok(0)
        }),
        Some(Command::Trace(args)) => args.into_config().and_then(trace::trace),
        None if cli.ping.is_multi() => multi::run(cli.ping),
        None => cli.ping.into_config().and_then(ping),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tcpping-diag: {e}");
            2
        }
    }
}

/// Write to stdout: Ok(false) when stdout is a closed pipe (`| head`), which ends a command
/// quietly, as ripgrep does; other write errors name the operation.
fn say(text: std::fmt::Arguments) -> Result<bool, Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::io("write output", e)),
    }
}

/// Stop on SIGINT/SIGTERM: set `stop` and wake whoever waits on `waker`.
fn on_signals(stop: &Arc<AtomicBool>, waker: &Waker) -> Result<(), Error> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(stop))
            .map_err(|e| Error::io("install signal handler", e))?;
        let tx = waker
            .sender()
            .map_err(|e| Error::io("install signal handler", e))?;
        signal_hook::low_level::pipe::register(sig, tx)
            .map_err(|e| Error::io("install signal handler", e))?;
    }
    Ok(())
}
