//! tcpping-diag: a TCP ping that tells why a ping was lost.
//!
//! Modules, one concern each:
//! - `cli`: flags, and their validation into configs
//! - `client`: the pings themselves; `stats`: the numbers; `output`: human and JSON lines
//! - `icmp`: ICMP error parsing, correlation to pings, raw sockets, the kernel error queue
//! - `privilege`: raw-socket privileges, dropped once the sockets are open
//! - `server`: the threaded echo server with simulated loss

pub mod cli;
pub mod client;
pub mod error;
pub mod icmp;
pub mod net;
pub mod output;
pub mod privilege;
pub mod server;
pub mod stats;
pub mod timing;
pub mod wire;

use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;

use cli::{Cli, ClientConfig, Command, Output, ServerConfig};
use client::Pinger;
use error::Error;
use icmp::listener::{Capture, RawIcmp};
use icmp::Registry;
use net::Waker;
use output::Reporter;
use stats::Stats;

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
        Some(Command::Demo) => demo(),
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

/// `tcpping-diag serve`
pub fn serve(cfg: ServerConfig) -> Result<(), Error> {
    let server = server::Server::bind(cfg)?;
    let stop = Waker::new().map_err(|e| Error::io("create wake-up channel", e))?;
    on_signals(&Arc::new(AtomicBool::new(false)), &stop)?;
    server.run(&stop)
}

/// Ask for the number of pings, as the original client did.
fn prompt_count() -> Result<Option<u64>, Error> {
    let stdin = io::stdin();
    loop {
        print!("Enter number of pings (N): ");
        let _ = io::stdout().flush();
        let mut line = String::new();
        if stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::io("read the number of pings", e))?
            == 0
        {
            return Err(Error::Usage("no number of pings given".into()));
        }
        match line.trim().parse::<u64>() {
            Ok(n) if n > 0 => return Ok(Some(n)),
            _ => eprintln!("Please enter a whole number greater than 0."),
        }
    }
}

/// Open the raw ICMP sockets for the target's family (and the other, when it can).
/// Err: the target family's socket could not be opened.
fn open_raw(v6: bool) -> io::Result<Vec<RawIcmp>> {
    let mut socks = vec![RawIcmp::open(v6)?];
    if let Ok(other) = RawIcmp::open(!v6) {
        socks.push(other);
    }
    Ok(socks)
}

/// How long the client waits at start for the kernel to stamp received packets.
const STAMPS_ON_WITHIN: std::time::Duration = std::time::Duration::from_millis(100);

/// The client: ping, report, summarise. Returns the exit status.
pub fn ping(mut cfg: ClientConfig) -> Result<i32, Error> {
    if cfg.count.is_none() && io::stdin().is_terminal() && cfg.output == Output::Human {
        cfg.count = prompt_count()?;
    }
    // Kernel receive timestamps before anything else: the kernel switches them on for the
    // host from deferred work, which has until the first ping to run (waited for below).
    let stamping = timing::RxStamping::request();
    // Raw sockets first, then drop every privilege before anything else happens.
    let raw = if cfg.icmp {
        match open_raw(cfg.target.is_ipv6()) {
            Ok(s) => Some(s),
            Err(e) => {
                if e.kind() == io::ErrorKind::PermissionDenied {
                    eprintln!("{}", privilege::NO_RAW_NOTICE);
                } else {
                    eprintln!(
                        "tcpping-diag: ICMP capture off: open raw ICMP socket: {}",
                        net::describe_io(&e)
                    );
                }
                None
            }
        }
    } else {
        None
    };
    // With raw-socket privileges, a packet socket times each handshake on the wire.
    let wire = wire::WireTap::open(cfg.target.port()).ok();
    if let Err(e) = privilege::drop_all() {
        return Err(Error::Setup(format!("drop capabilities: {e}")));
    }

    let src = net::source_address_for(cfg.target).ok();
    let registry = Arc::new(Registry::new().with_unmatched_log(cfg.verbose));
    let waker = Arc::new(Waker::new().map_err(|e| Error::io("create wake-up channel", e))?);
    let stop = Arc::new(AtomicBool::new(false));
    on_signals(&stop, &waker)?;
    let capture = match raw {
        Some(socks) => {
            let tx = waker
                .sender()
                .map_err(|e| Error::io("create wake-up channel", e))?;
            Some(
                Capture::start(socks, Arc::clone(&registry), tx)
                    .map_err(|e| Error::io("start ICMP listener", e))?,
            )
        }
        None => None,
    };

    // Not locked for the whole run: the demo's server thread logs to stdout too.
    let mut out = Reporter::new(io::BufWriter::new(io::stdout()), &cfg);
    let mut stats = Stats::default();
    let started = Instant::now();
    let mut pinger = Pinger::new(
        cfg.clone(),
        src,
        Arc::clone(&registry),
        Arc::clone(&waker),
        Arc::clone(&stop),
    )
    .with_raw_capture(capture.is_some())
    .with_wire_tap(wire);
    // A closed pipe (| head) ends the run quietly; other write errors are reported.
    let write = |r: io::Result<()>| -> Result<bool, Error> {
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(Error::io("write output", e)),
        }
    };
    if !write(out.start(&cfg, src))? {
        return Ok(0);
    }
    if let Some(on) = &stamping {
        if let timing::InEffect::Unconfirmed(why) = on.wait_in_effect(STAMPS_ON_WITHIN) {
            if cfg.verbose {
                eprintln!(
                    "tcpping-diag: kernel receive timestamps not confirmed on ({why}): \
                     pings whose packets pass before they are on are timed by the next \
                     clock (connect_clock / rtt_clock say which)"
                );
            }
        }
    }
    let mut seq = 0u64;
    loop {
        seq += 1;
        let ping_start = Instant::now();
        let Some(result) = pinger.ping(seq) else {
            break;
        };
        stats.record(&result);
        if !write(out.ping(&result, &cfg))? {
            return Ok(if stats.replies > 0 { 0 } else { 1 });
        }
        if cfg.verbose {
            for (err, why) in registry.drain_unmatched() {
                if !write(out.unmatched(&err, why))? {
                    return Ok(if stats.replies > 0 { 0 } else { 1 });
                }
            }
        }
        if cfg.count.is_some_and(|n| seq >= n) {
            break;
        }
        if !pinger.pause_until(ping_start + cfg.interval) {
            break;
        }
    }
    write(out.summary(&cfg, &stats, &registry, started.elapsed()))?;
    drop(capture);
    Ok(if stats.replies > 0 { 0 } else { 1 })
}

/// `tcpping-diag demo`: a lossy server on loopback, pinged three ways.
fn demo() -> Result<i32, Error> {
    let server_cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        loss: 0.3,
        loss_mode: cli::LossMode::Reply,
        seed: Some(42),
        max_clients: 64,
        idle_timeout: std::time::Duration::from_secs(5),
        quiet: true,
    };
    let server = Arc::new(server::Server::bind(server_cfg)?);
    let addr = server.local_addr().map_err(|e| Error::io("listen", e))?;
    let stop = Arc::new(Waker::new().map_err(|e| Error::io("create wake-up channel", e))?);
    let (srv, stop2) = (Arc::clone(&server), Arc::clone(&stop));
    let handle = std::thread::spawn(move || srv.run(&stop2));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("bind", e))?;
    let closed_addr = closed.local_addr().map_err(|e| Error::io("bind", e))?;
    drop(closed);
    let steps = [
        (
            format!("1) 8 pings to a server on {addr} that loses 30% of them (answers LOST):"),
            vec![
                addr.to_string(),
                "-n".into(),
                "8".into(),
                "-i".into(),
                "0.2".into(),
            ],
        ),
        (
            "2) the same server, one connection for all pings (no handshake in the RTT):".into(),
            vec![
                addr.to_string(),
                "-n".into(),
                "4".into(),
                "-i".into(),
                "0.2".into(),
                "--persistent".into(),
            ],
        ),
        (
            format!("3) a port where nothing listens ({closed_addr}): refused, at once"),
            vec![
                closed_addr.to_string(),
                "-n".into(),
                "2".into(),
                "-i".into(),
                "0.2".into(),
            ],
        ),
    ];
    for (title, args) in steps {
        println!("\n=== {title}");
        let cli = Cli::try_parse_from(std::iter::once("tcpping-diag".to_string()).chain(args))
            .map_err(|e| Error::Usage(e.to_string()))?;
        let mut cfg = cli.ping.into_config()?;
        cfg.icmp = false;
        ping(cfg)?;
    }
    println!(
        "\nICMP diagnoses (host unreachable, prohibited, TTL exceeded) need a real path: run `sudo scripts/lab.sh demo`."
    );
    stop.wake();
    let _ = handle.join();
    Ok(0)
}
