//! What each command does: `main` calls [`run`], which parses the flags, runs the command
//! and maps its result to an exit status.

mod demo;
mod generate;
mod multi;
pub mod ping;
mod pmtu;
mod report;
pub mod screen;
mod serve;
mod shared;
#[cfg(test)]
pub(crate) mod sim;
pub mod trace;

use clap::Parser;

use crate::cli::{Cli, Command};

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
        Some(Command::Report(args)) => report::run(args),
        Some(Command::Generate(args)) => generate::run(&args),
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
