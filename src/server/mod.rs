//! The threaded echo server: one thread per client, as the original's multithreaded server.
//!
//! A request is a line `ping <seq> <timestamp>` (where a request ends: `request`); the reply
//! is the request uppercased, or `LOST` (or nothing) when loss is simulated. The accept loop
//! never waits on a client; the shared state (loss RNG, counters, log) is synchronised. No
//! peer can wedge it (limits per source address, idle and line timeouts, a send timeout) or
//! flood its log (`limits`).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use socket2::{Domain, Socket, Type};

use crate::error::Error;
use crate::net::{self, Waker};

mod limits;
mod request;
mod text;
use limits::{AcceptTrouble, LineBudget, Shown, ALL_LINES_PER_SEC, CLIENT_LINES_PER_SEC};
use request::{Bare, Framer};
use text::python_addr;

/// How a lost ping is lost (`serve --loss-mode`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossMode {
    /// Answer "LOST", as the original server did
    Reply,
    /// Send nothing: the client sees a real timeout
    Silent,
}

/// Validated server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub loss: f64,
    pub loss_mode: LossMode,
    pub seed: Option<u64>,
    pub max_clients: usize,
    /// Connections at once from one source address.
    pub max_per_source: usize,
    pub idle_timeout: Duration,
    /// Time from a request's first byte to its end (newline) before the connection is closed.
    pub line_timeout: Duration,
    pub quiet: bool,
}

/// Longest request line accepted, in bytes (without the newline): the client's largest
/// `-s` (a jumbo frame's 9000 bytes) fits.
pub const MAX_LINE: usize = 9000;
/// Stack of a client thread: small, so thousands of idle clients cost little memory.
const CLIENT_STACK: usize = 64 * 1024;

/// Counters printed in the totals line.
#[derive(Default, Debug)]
pub struct Totals {
    pub connections: AtomicU64,
    pub rejected: AtomicU64,
    pub messages: AtomicU64,
    pub answered: AtomicU64,
    pub lost: AtomicU64,
    pub invalid: AtomicU64,
}

struct Shared {
    cfg: ServerConfig,
    rng: Mutex<ChaCha8Rng>,
    active: AtomicUsize,
    totals: Totals,
    /// Client threads that finished their client and wait a while for the next one.
    idle: Mutex<Vec<Arc<Slot>>>,
    /// Log lines about clients and rejected connections, all together.
    warnings: Mutex<LineBudget>,
    /// Connections per source address, when --max-per-source is below --max-clients.
    sources: Mutex<HashMap<IpAddr, usize>>,
}

/// Where an idle client thread waits for its next client.
#[derive(Default)]
struct Slot {
    job: Mutex<Option<(TcpStream, SocketAddr)>>,
    ready: Condvar,
}

/// How long a client thread waits for a next client before it exits.
const THREAD_KEEP: Duration = Duration::from_secs(5);

impl Shared {
    fn log(&self, line: std::fmt::Arguments) {
        let mut out = io::stdout().lock();
        let _ = out.write_fmt(line);
        let _ = out.write_all(b"\n");
    }

    /// A line about a client or a rejected connection: at most ALL_LINES_PER_SEC a second,
    /// the rest counted and the count logged with the next line that may go out.
    fn warn(&self, line: std::fmt::Arguments) {
        let mut budget = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
        let Some(suppressed) = budget.take(Instant::now()) else {
            return;
        };
        if suppressed > 0 {
            self.log(format_args!(
                "{suppressed} log lines suppressed (more than {ALL_LINES_PER_SEC} a second)"
            ));
        }
        self.log(line);
    }

    /// Whether connections are counted per source (not when the limit cannot bind).
    fn per_source(&self) -> bool {
        self.cfg.max_per_source < self.cfg.max_clients
    }

    /// A client left (or was never served): its slots are free again.
    fn release(&self, peer: &SocketAddr) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        if self.per_source() {
            let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
            let source = source_of(peer);
            if let Some(n) = sources.get_mut(&source) {
                *n -= 1;
                if *n == 0 {
                    sources.remove(&source);
                }
            }
        }
    }

    fn lose(&self) -> bool {
        if self.cfg.loss <= 0.0 {
            return false;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        rng.gen_bool(self.cfg.loss)
    }
}

pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    seed: u64,
}

impl Server {
    /// Bind the listening socket. `[::]` listens on IPv6 and IPv4.
    pub fn bind(cfg: ServerConfig) -> Result<Server, Error> {
        let addr = cfg.listen;
        let op = || format!("listen on {addr}");
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)
            .map_err(|e| Error::io(op(), e))?;
        sock.set_reuse_address(true)
            .map_err(|e| Error::io(op(), e))?;
        if addr.is_ipv6() {
            sock.set_only_v6(false).map_err(|e| Error::io(op(), e))?;
        }
        sock.bind(&addr.into()).map_err(|e| Error::io(op(), e))?;
        // Accepted sockets inherit these from the listener: no system calls per client. The
        // receive timeout is the clients' idle timeout; accept() sees it too, and a timed-out
        // accept only means that no client came for that long (see `run`). The send timeout
        // ends a client that does not read its replies: a write that makes no progress for
        // that long fails.
        sock.set_nodelay(true).map_err(|e| Error::io(op(), e))?;
        sock.set_read_timeout(Some(cfg.idle_timeout))
            .map_err(|e| Error::io(op(), e))?;
        sock.set_write_timeout(Some(cfg.idle_timeout))
            .map_err(|e| Error::io(op(), e))?;
        sock.listen(4096).map_err(|e| Error::io(op(), e))?;
        let seed = cfg.seed.unwrap_or_else(rand::random);
        let shared = Arc::new(Shared {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            cfg,
            active: AtomicUsize::new(0),
            totals: Totals::default(),
            idle: Mutex::new(Vec::new()),
            warnings: Mutex::new(LineBudget::new(ALL_LINES_PER_SEC)),
            sources: Mutex::new(HashMap::new()),
        });
        Ok(Server {
            listener: sock.into(),
            shared,
            seed,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept clients until `stop` becomes readable (a signal or `Waker::wake`).
    pub fn run(&self, stop: &Waker) -> Result<(), Error> {
        let addr = self.local_addr().map_err(|e| Error::io("listen", e))?;
        let cfg = &self.shared.cfg;
        self.shared
            .log(format_args!("Server Started Listening on {addr}"));
        self.shared.log(format_args!(
            "loss {:.1}% ({}), seed {}, max {} clients ({} per source address), idle timeout {}, line timeout {}",
            cfg.loss * 100.0,
            match cfg.loss_mode {
                LossMode::Reply => "answered LOST",
                LossMode::Silent => "not answered",
            },
            self.seed,
            cfg.max_clients,
            cfg.max_per_source.min(cfg.max_clients),
            humantime::format_duration(cfg.idle_timeout),
            humantime::format_duration(cfg.line_timeout)
        ));
        let files = crate::net::raise_open_files();
        if files.is_some_and(|n| (n as usize) < cfg.max_clients.saturating_add(16)) {
            self.shared.log(format_args!(
                "warning: open-file limit {} is below --max-clients {} (+16): raise it with ulimit -n",
                files.unwrap_or(0),
                cfg.max_clients
            ));
        }
        // Blocking accept, woken for shutdown by shutdown(2) on the listening socket: one
        // system call per client, no poll in between.
        let stopping = AtomicBool::new(false);
        let fd = self.listener.as_raw_fd();
        thread::scope(|scope| {
            scope.spawn(|| {
                while !matches!(net::poll(&[(stop.fd(), false)], None), Ok(r) if r[0].read) {}
                stopping.store(true, Ordering::SeqCst);
                // SAFETY: fd is our listening socket, alive for the whole scope.
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            });
            let mut trouble = AcceptTrouble::new(Instant::now());
            loop {
                match self.listener.accept() {
                    Ok((stream, peer)) => {
                        if let Some(line) = trouble.succeeded(Instant::now()) {
                            self.shared.log(format_args!("{line}"));
                        }
                        self.admit(stream, peer)
                    }
                    Err(_) if stopping.load(Ordering::SeqCst) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // No client for an idle timeout (the listener's inherited SO_RCVTIMEO),
                    // or one that gave up in the backlog: nothing to say.
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionAborted
                        ) =>
                    {
                        continue
                    }
                    Err(e) => {
                        // Out of descriptors or memory: back off, say so once and then in
                        // summaries, keep serving the clients already in.
                        let (line, wait) = trouble.failed(Instant::now(), &net::describe_io(&e));
                        if let Some(line) = line {
                            self.shared.log(format_args!("{line}"));
                        }
                        thread::sleep(wait);
                    }
                }
            }
        });
        let suppressed = (self.shared.warnings.lock())
            .unwrap_or_else(|p| p.into_inner())
            .take_suppressed();
        if suppressed > 0 {
            self.shared.log(format_args!(
                "{suppressed} log lines suppressed (more than {ALL_LINES_PER_SEC} a second)"
            ));
        }
        let t = &self.shared.totals;
        self.shared.log(format_args!(
            "Server stopped: {} connections, {} rejected, {} messages, {} answered, {} lost, {} invalid",
            t.connections.load(Ordering::Relaxed),
            t.rejected.load(Ordering::Relaxed),
            t.messages.load(Ordering::Relaxed),
            t.answered.load(Ordering::Relaxed),
            t.lost.load(Ordering::Relaxed),
            t.invalid.load(Ordering::Relaxed),
        ));
        Ok(())
    }

    fn admit(&self, stream: TcpStream, peer: SocketAddr) {
        let shared = &self.shared;
        if shared.active.load(Ordering::Relaxed) >= shared.cfg.max_clients {
            shared.totals.rejected.fetch_add(1, Ordering::Relaxed);
            shared.warn(format_args!(
                "Too many clients ({}): closing connection from {}",
                shared.cfg.max_clients,
                python_addr(&peer)
            ));
            return;
        }
        if shared.per_source() {
            let mut sources = shared.sources.lock().unwrap_or_else(|p| p.into_inner());
            let source = source_of(&peer);
            let n = sources.entry(source).or_insert(0);
            if *n >= shared.cfg.max_per_source {
                drop(sources);
                shared.totals.rejected.fetch_add(1, Ordering::Relaxed);
                shared.warn(format_args!(
                    "Too many connections from {source} ({}): closing connection from {}",
                    shared.cfg.max_per_source,
                    python_addr(&peer)
                ));
                return;
            }
            *n += 1;
        }
        shared.active.fetch_add(1, Ordering::Relaxed);
        shared.totals.connections.fetch_add(1, Ordering::Relaxed);
        // A thread that finished its client takes this one: still one thread per client,
        // without a thread's creation and exit for every connection.
        let parked = shared.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(slot) = parked {
            *slot.job.lock().unwrap_or_else(|p| p.into_inner()) = Some((stream, peer));
            slot.ready.notify_one();
            return;
        }
        let worker = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .stack_size(CLIENT_STACK)
            .spawn(move || client_thread(&worker, stream, peer));
        if let Err(e) = spawned {
            shared.release(&peer);
            shared.totals.rejected.fetch_add(1, Ordering::Relaxed);
            shared.warn(format_args!(
                "cannot start a thread for {}: {}",
                python_addr(&peer),
                net::describe_io(&e)
            ));
        }
    }
}

/// A client thread: serve its client, then wait up to THREAD_KEEP for another one.
fn client_thread(shared: &Shared, stream: TcpStream, peer: SocketAddr) {
    let slot = Arc::new(Slot::default());
    let mut job = Some((stream, peer));
    while let Some((stream, peer)) = job.take() {
        serve_client(shared, stream, peer);
        shared.release(&peer);
        shared
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&slot));
        let mut next = slot.job.lock().unwrap_or_else(|p| p.into_inner());
        let mut waited = false;
        while next.is_none() {
            if waited {
                // Timed out: leave, unless `admit` took this slot and a client is on its way.
                drop(next);
                let mut idle = shared.idle.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(i) = idle.iter().position(|s| Arc::ptr_eq(s, &slot)) {
                    idle.swap_remove(i);
                    return;
                }
                drop(idle);
                next = slot.job.lock().unwrap_or_else(|p| p.into_inner());
                while next.is_none() {
                    next = slot.ready.wait(next).unwrap_or_else(|p| p.into_inner());
                }
                break;
            }
            let (g, _) = slot
                .ready
                .wait_timeout(next, THREAD_KEEP)
                .unwrap_or_else(|p| p.into_inner());
            next = g;
            waited = true;
        }
        job = next.take();
    }
}

/// The source address a connection counts against: an IPv4 client of a dual-stack listener
/// (::ffff:a.b.c.d) as its IPv4 address.
fn source_of(peer: &SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Serve one client until it closes, errs, idles out or sends an oversized line.
fn serve_client(shared: &Shared, stream: TcpStream, peer: SocketAddr) {
    let mut conn = Conn {
        shared,
        stream,
        peer,
        reply: Vec::with_capacity(256),
        budget: LineBudget::new(CLIENT_LINES_PER_SEC),
    };
    conn.serve();
    let suppressed = conn.budget.take_suppressed();
    if suppressed > 0 {
        shared.warn(format_args!(
            "{suppressed} more log lines about {} suppressed (more than {CLIENT_LINES_PER_SEC} a second)",
            python_addr(&peer)
        ));
    }
}

/// How long after the last byte of a request in the original's form without a fraction of
/// the second (see `request::Bare::UnlessMore`) it is answered, if nothing follows.
const QUIET: Duration = Duration::from_millis(200);

/// What the wait for the rest of an incomplete request ended with.
enum Wait {
    /// Bytes (or the end of the stream) to read.
    More,
    /// The request is complete: nothing followed it within `QUIET`.
    Quiet,
    /// The connection must end (a log line says why).
    Close,
}

/// One client's connection.
struct Conn<'a> {
    shared: &'a Shared,
    stream: TcpStream,
    peer: SocketAddr,
    reply: Vec<u8>,
    /// Log lines about this client.
    budget: LineBudget,
}

impl Conn<'_> {
    /// A line about this client: at most CLIENT_LINES_PER_SEC a second (and within the
    /// server's budget for all clients), the rest counted.
    fn warn(&mut self, line: std::fmt::Arguments) {
        let Some(suppressed) = self.budget.take(Instant::now()) else {
            return;
        };
        if suppressed > 0 {
            self.shared.warn(format_args!(
                "{suppressed} log lines about {} suppressed (more than {CLIENT_LINES_PER_SEC} a second)",
                python_addr(&self.peer)
            ));
        }
        self.shared.warn(line);
    }

    fn serve(&mut self) {
        let mut buf = [0u8; 4096];
        let mut framer = Framer::default();
        // When the incomplete request's first and last bytes came.
        let mut begun = Instant::now();
        let mut last = begun;
        loop {
            if !framer.pending().is_empty() {
                match self.wait_for_rest(&framer, begun, last) {
                    Wait::More => {}
                    Wait::Quiet => {
                        if !self.answer(framer.pending(), false) {
                            return;
                        }
                        framer.take_bare();
                        continue;
                    }
                    Wait::Close => return,
                }
            }
            let n = match self.stream.read(&mut buf) {
                Ok(0) => {
                    // The client half-closed (or closed): its bytes without a newline are its
                    // last request.
                    if !framer.pending().is_empty() {
                        self.answer(framer.pending(), false);
                    }
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    self.idle();
                    return;
                }
                Err(_) => return, // reset by the peer: nothing to answer
            };
            let continued = !framer.pending().is_empty();
            framer.push(&buf[..n]);
            let mut ended = false;
            while let Some(line) = framer.next_line() {
                ended = true;
                if !self.answer(framer.get(line), true) {
                    return;
                }
            }
            framer.compact();
            let pending = framer.pending();
            if pending.is_empty() {
                continue;
            }
            if pending.len() > MAX_LINE {
                self.too_long();
                return;
            }
            if request::bare(pending) == Bare::Complete {
                if !self.answer(pending, false) {
                    return;
                }
                framer.take_bare();
                continue;
            }
            last = Instant::now();
            if ended || !continued {
                begun = last;
            }
        }
    }

    /// Wait for the rest of an incomplete request, begun and last added to at the given
    /// instants (the socket's own timeout is for an idle connection, with nothing pending).
    fn wait_for_rest(&mut self, framer: &Framer, begun: Instant, last: Instant) -> Wait {
        let cfg = &self.shared.cfg;
        let quiet = (request::bare(framer.pending()) == Bare::UnlessMore).then(|| last + QUIET);
        let line = begun + cfg.line_timeout;
        let idle = last + cfg.idle_timeout;
        let close = line.min(idle);
        loop {
            let now = Instant::now();
            if quiet.is_some_and(|q| now >= q) {
                return Wait::Quiet;
            }
            if now >= close {
                if line <= idle {
                    self.line_timeout();
                } else {
                    self.idle();
                }
                return Wait::Close;
            }
            let until = quiet.map_or(close, |q| q.min(close));
            match net::poll(&[(self.stream.as_raw_fd(), false)], Some(until - now)) {
                Ok(r) if r[0].read || r[0].error => return Wait::More,
                Ok(_) => {}                  // the deadline (or a signal): look again
                Err(_) => return Wait::More, // let the read say what is wrong
            }
        }
    }

    fn idle(&mut self) {
        let peer = python_addr(&self.peer);
        self.warn(format_args!(
            "Idle for {}: closing connection from {peer}",
            humantime::format_duration(self.shared.cfg.idle_timeout),
        ));
    }

    /// A request that is not complete --line-timeout after its first byte: a client trickling
    /// bytes to hold the connection, or one that waits for an answer to a request without a
    /// newline (told what to do before it is closed).
    fn line_timeout(&mut self) {
        self.shared.totals.invalid.fetch_add(1, Ordering::Relaxed);
        let peer = python_addr(&self.peer);
        let limit = humantime::format_duration(self.shared.cfg.line_timeout);
        self.warn(format_args!(
            "Request not completed within {limit}: closing connection from {peer}"
        ));
        self.send(format!("ERROR request not completed within {limit}\n").as_bytes());
    }

    fn too_long(&mut self) {
        self.shared.totals.invalid.fetch_add(1, Ordering::Relaxed);
        let peer = python_addr(&self.peer);
        self.warn(format_args!(
            "Request longer than {MAX_LINE} bytes: closing connection from {peer}"
        ));
        self.send(format!("ERROR request longer than {MAX_LINE} bytes\n").as_bytes());
    }

    /// Write to the client. A write that makes no progress for the idle timeout (the socket's
    /// SO_SNDTIMEO) means the client does not read: the connection is aborted, so its unsent
    /// replies do not keep kernel memory. Returns false when the connection must end.
    fn send(&mut self, bytes: &[u8]) -> bool {
        match self.stream.write_all(bytes) {
            Ok(()) => true,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let peer = python_addr(&self.peer);
                self.warn(format_args!(
                    "Client not reading for {}: closing connection from {peer}",
                    humantime::format_duration(self.shared.cfg.idle_timeout),
                ));
                // RST instead of FIN: the replies queued for it are dropped at once.
                let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
                false
            }
            Err(_) => false, // reset by the peer
        }
    }

    /// Answer one request (the loss RNG is drawn once per call). Returns false when the
    /// connection must end.
    fn answer(&mut self, line: &[u8], newline: bool) -> bool {
        let shared = self.shared;
        let cfg = &shared.cfg;
        if line.len() > MAX_LINE {
            self.too_long();
            return false;
        }
        shared.totals.messages.fetch_add(1, Ordering::Relaxed);
        let Ok(text) = std::str::from_utf8(line) else {
            shared.totals.invalid.fetch_add(1, Ordering::Relaxed);
            let peer = python_addr(&self.peer);
            self.warn(format_args!(
                "Invalid message (not UTF-8) from {peer}: {}",
                Shown(line)
            ));
            return self.send(b"ERROR request is not UTF-8 text\n");
        };
        let mut reply = std::mem::take(&mut self.reply);
        reply.clear();
        let lost = shared.lose();
        if !cfg.quiet {
            shared.log(format_args!(
                "Message sent by client = {} from {}",
                Shown(line),
                python_addr(&self.peer)
            ));
        }
        if lost {
            shared.totals.lost.fetch_add(1, Ordering::Relaxed);
            if !cfg.quiet {
                shared.log(format_args!("Packet lost"));
            }
            if cfg.loss_mode == LossMode::Silent {
                self.reply = reply;
                return true;
            }
            reply.extend_from_slice(b"LOST");
        } else {
            shared.totals.answered.fetch_add(1, Ordering::Relaxed);
            if text.is_ascii() {
                // The usual request: uppercase in place, no allocation.
                reply.extend_from_slice(text.as_bytes());
                reply.make_ascii_uppercase();
            } else {
                reply.extend_from_slice(text.to_uppercase().as_bytes());
            }
            if !cfg.quiet {
                shared.log(format_args!("Response sent back = {}", Shown(&reply)));
            }
        }
        if newline {
            reply.push(b'\n');
        }
        let ok = self.send(&reply);
        self.reply = reply;
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_clients_of_a_dual_stack_listener_count_as_their_ipv4_address() {
        let s = |a: &str| source_of(&a.parse().unwrap()).to_string();
        assert_eq!(s("[::ffff:127.0.0.2]:4000"), "127.0.0.2");
        assert_eq!(s("127.0.0.2:4000"), "127.0.0.2");
        assert_eq!(s("[::1]:4000"), "::1");
        assert_eq!(s("[2001:db8::1]:4000"), "2001:db8::1");
    }
}
