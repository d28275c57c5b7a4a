//! `tcpping-diag demo`: a lossy server on loopback, pinged three ways.

use std::sync::Arc;

use clap::Parser;

use crate::cli::Cli;
use crate::error::Error;
use crate::net::Waker;
use crate::server;
use crate::server::{LossMode, ServerConfig};

use super::ping;

/// `tcpping-diag demo`: a lossy server on loopback, pinged three ways.
pub fn demo() -> Result<i32, Error> {
    let server_cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        loss: 0.3,
        loss_mode: LossMode::Reply,
        seed: Some(42),
        max_clients: 64,
        max_per_source: 64,
        line_timeout: std::time::Duration::from_secs(5),
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
        if !super::shared::say(format_args!("\n=== {title}\n"))? {
            break; // stdout closed (| head): the demo ends quietly
        }
        let cli = Cli::try_parse_from(std::iter::once("tcpping-diag".to_string()).chain(args))
            .map_err(|e| Error::Usage(e.to_string()))?;
        let mut cfg = cli.ping.into_config()?;
        cfg.icmp = false;
        ping(cfg)?;
    }
    super::shared::say(format_args!(
        "\nICMP diagnoses (host unreachable, prohibited, TTL exceeded) need a real path: run `sudo scripts/lab.sh demo`.\n"
    ))?;
    stop.wake();
    let _ = handle.join();
    Ok(0)
}
