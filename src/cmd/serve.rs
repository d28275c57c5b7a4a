//! `tcpping-diag serve`: the threaded echo server until SIGINT/SIGTERM.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::error::Error;
use crate::net::Waker;
use crate::server::Server;
use crate::server::ServerConfig;

/// `tcpping-diag serve`
pub fn serve(cfg: ServerConfig) -> Result<(), Error> {
    let server = Server::bind(cfg)?;
    let stop = Waker::new().map_err(|e| Error::io("create wake-up channel", e))?;
    super::shared::on_signals(&Arc::new(AtomicBool::new(false)), &stop)?;
    server.run(&stop)
}
