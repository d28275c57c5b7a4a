//! Load generator for the tcpping-diag echo server (benchmarks only, not the product client).
//!
//! `loadgen ADDR --mode conn|persistent|idle --clients N --duration SECS`
//!
//! - `conn`: each worker connects, sends `ping <seq> <ts>\n`, reads the echo line (or `LOST`)
//!   and closes with SO_LINGER 0 (RST: no TIME_WAIT piles up), in a loop.
//! - `persistent`: one connection per worker, request/response loop on it.
//! - `idle`: opens N connections (each answers one ping first, so a server thread is really
//!   serving it), prints the JSON line once all are established, then holds them for the
//!   duration (or until killed).
//!
//! Prints one JSON line: mode, clients, duration, completed pings, pings/s, latency
//! p50/p99/max in microseconds (whole operation: connect + echo for `conn`), errors.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use socket2::{Domain, Socket, Type};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Conn,
    Persistent,
    Idle,
    /// Not load: serve ADDR with the leanest possible thread-per-connection echo server
    /// (uppercase each read, no loss, no log), the machine's ceiling for comparisons.
    ReferenceServer,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Conn => "conn",
            Mode::Persistent => "persistent",
            Mode::Idle => "idle",
            Mode::ReferenceServer => "reference-server",
        }
    }
}

#[derive(Parser, Debug)]
#[command(about = "Load generator for the tcpping-diag echo server")]
struct Args {
    /// Server address, e.g. 127.0.0.1:12001
    addr: SocketAddr,
    #[arg(long, value_enum, default_value_t = Mode::Conn)]
    mode: Mode,
    /// Concurrent clients (worker threads; connections held in idle mode)
    #[arg(short, long, default_value_t = 1)]
    clients: usize,
    /// Seconds to run (idle: seconds to hold the connections once established)
    #[arg(short, long, default_value_t = 5.0)]
    duration: f64,
    /// Comma-separated local source addresses to spread connections over (loopback has
    /// 127.0.0.0/8: several sources give more ports)
    #[arg(long, value_delimiter = ',')]
    sources: Vec<IpAddr>,
    /// Per-operation timeout in seconds (connect, and waiting for an echo)
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Threads opening the connections in idle mode
    #[arg(long, default_value_t = 8)]
    open_threads: usize,
    /// conn/persistent: drive the clients from this many event-loop threads (mio, non-blocking
    /// sockets) instead of one blocking thread per client; 0 = a thread per client
    #[arg(long, default_value_t = 0)]
    event_threads: usize,
}

#[derive(Default)]
struct Counters {
    completed: AtomicU64,
    lost: AtomicU64,
    errors: AtomicU64,
}

struct Shared {
    args: Args,
    counters: Counters,
    first_error: Mutex<Option<String>>,
    next_source: AtomicU64,
}

impl Shared {
    fn error(&self, what: &str, e: &dyn std::fmt::Display) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(format!("{what}: {e}"));
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.args.timeout)
    }

    /// A new connection to the server, from the next source address when any are given.
    fn connect(&self) -> io::Result<TcpStream> {
        let addr = self.args.addr;
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        sock.set_nodelay(true)?;
        sock.set_linger(Some(Duration::ZERO))?;
        if !self.args.sources.is_empty() {
            let i = self.next_source.fetch_add(1, Ordering::Relaxed) as usize;
            let ip = self.args.sources[i % self.args.sources.len()];
            if ip.is_ipv4() {
                // Pick the port at connect time (per 4-tuple), not at bind time.
                let one: libc::c_int = 1;
                // SAFETY: valid fd, option value is a c_int that outlives the call.
                unsafe {
                    libc::setsockopt(
                        sock.as_raw_fd(),
                        libc::IPPROTO_IP,
                        libc::IP_BIND_ADDRESS_NO_PORT,
                        (&one as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    );
                }
            }
            sock.bind(&SocketAddr::new(ip, 0).into())?;
        }
        sock.connect_timeout(&addr.into(), self.timeout())?;
        let stream: TcpStream = sock.into();
        stream.set_read_timeout(Some(self.timeout()))?;
        Ok(stream)
    }
}

fn wall_timestamp() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Outcome of one request on a connection.
enum Echo {
    Reply,
    Lost,
}

/// The request line for ping `seq`, with its newline.
fn request(seq: u64) -> String {
    format!("ping {seq} {:.6}\n", wall_timestamp())
}

/// Judge what has arrived so far for `request`: `None` while the answer is incomplete, else
/// the uppercased line or `LOST` (with or without a newline: the Python server sends none).
fn judge(request: &str, buf: &[u8]) -> Option<io::Result<Echo>> {
    if buf.starts_with(b"LOST") {
        return Some(Ok(Echo::Lost));
    }
    if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
        let line = &buf[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let want = request.trim_end().as_bytes();
        if line.len() == want.len()
            && line
                .iter()
                .zip(want)
                .all(|(a, b)| *a == b.to_ascii_uppercase())
        {
            return Some(Ok(Echo::Reply));
        }
        return Some(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected reply {:?}", String::from_utf8_lossy(line)),
        )));
    }
    if buf.len() > 4096 {
        return Some(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "reply too long",
        )));
    }
    None
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection")
}

/// Send one ping and read its answer.
fn ping_once(stream: &mut TcpStream, seq: u64, buf: &mut Vec<u8>) -> io::Result<Echo> {
    let request = request(seq);
    stream.write_all(request.as_bytes())?;
    buf.clear();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(closed());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(verdict) = judge(&request, buf) {
            return verdict;
        }
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

fn record(hist: &mut Histogram<u64>, took: Duration) {
    let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
    hist.saturating_record(us);
}

/// One worker of `conn` or `persistent` mode; returns its latency histogram.
fn worker(
    shared: &Shared,
    id: u64,
    start: &Barrier,
    deadline: &Mutex<Option<Instant>>,
) -> Histogram<u64> {
    let mut hist = new_hist();
    let mut buf = Vec::with_capacity(256);
    let persistent = shared.args.mode == Mode::Persistent;
    let mut conn: Option<TcpStream> = None;
    if persistent {
        match shared.connect() {
            Ok(s) => conn = Some(s),
            Err(e) => shared.error("connect", &e),
        }
    }
    start.wait();
    let end = deadline
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .expect("deadline set before the start");
    let mut seq = id << 40;
    let c = &shared.counters;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        seq += 1;
        let mut stream = match conn.take() {
            Some(s) => s,
            None => match shared.connect() {
                Ok(s) => s,
                Err(e) => {
                    shared.error("connect", &e);
                    thread::sleep(Duration::from_millis(1));
                    continue;
                }
            },
        };
        match ping_once(&mut stream, seq, &mut buf) {
            Ok(echo) => {
                let t1 = Instant::now();
                if t1 <= end {
                    c.completed.fetch_add(1, Ordering::Relaxed);
                    if matches!(echo, Echo::Lost) {
                        c.lost.fetch_add(1, Ordering::Relaxed);
                    }
                    record(&mut hist, t1 - t0);
                }
                if persistent {
                    conn = Some(stream);
                }
            }
            Err(e) => shared.error("echo", &e),
        }
    }
    hist
}

fn percentile(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn print_json(shared: &Shared, hist: &Histogram<u64>, elapsed: Duration, extra: &str) {
    let c = &shared.counters;
    let completed = c.completed.load(Ordering::Relaxed);
    let secs = if shared.args.mode == Mode::Idle {
        elapsed.as_secs_f64()
    } else {
        shared.args.duration
    };
    let rate = if secs > 0.0 {
        completed as f64 / secs
    } else {
        0.0
    };
    let first = shared
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let first = first.map_or_else(|| "null".to_string(), |e| json_str(&e));
    println!(
        "{{\"mode\":\"{}\",\"addr\":\"{}\",\"clients\":{},\"duration_s\":{},\"elapsed_s\":{:.3},\
         \"completed\":{},\"lost_replies\":{},\"pings_per_s\":{:.1},\"p50_us\":{},\"p99_us\":{},\
         \"max_us\":{},\"errors\":{},\"first_error\":{}{}}}",
        shared.args.mode.name(),
        shared.args.addr,
        shared.args.clients,
        shared.args.duration,
        elapsed.as_secs_f64(),
        completed,
        c.lost.load(Ordering::Relaxed),
        rate,
        percentile(hist, 0.50),
        percentile(hist, 0.99),
        hist.max(),
        c.errors.load(Ordering::Relaxed),
        first,
        extra
    );
    let _ = io::stdout().flush();
}

/// Raise the soft descriptor limit to the hard one: idle mode holds thousands of sockets.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

fn run_load(shared: Arc<Shared>) {
    let n = shared.args.clients.max(1);
    let barrier = Arc::new(Barrier::new(n + 1));
    let deadline = Arc::new(Mutex::new(None));
    let mut handles = Vec::with_capacity(n);
    for id in 0..n {
        let (shared, barrier, deadline) = (
            Arc::clone(&shared),
            Arc::clone(&barrier),
            Arc::clone(&deadline),
        );
        let h = thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || worker(&shared, id as u64, &barrier, &deadline))
            .expect("spawn worker");
        handles.push(h);
    }
    go_and_report(&shared, handles, &barrier, &deadline);
}

/// Start the workers waiting at `start` (the deadline set first), wait for them all, merge
/// their latency histograms and print the JSON line.
fn go_and_report(
    shared: &Shared,
    handles: Vec<thread::JoinHandle<Histogram<u64>>>,
    start: &Barrier,
    deadline: &Mutex<Option<Instant>>,
) {
    let t0 = Instant::now();
    *deadline.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(t0 + Duration::from_secs_f64(shared.args.duration));
    start.wait();
    let mut hist = new_hist();
    for h in handles {
        if let Ok(part) = h.join() {
            let _ = hist.add(part);
        }
    }
    print_json(shared, &hist, t0.elapsed(), "");
}

fn run_idle(shared: Arc<Shared>) {
    let n = shared.args.clients;
    let threads = shared.args.open_threads.clamp(1, n.max(1));
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let shared = Arc::clone(&shared);
        let count = n / threads + usize::from(t < n % threads);
        handles.push(thread::spawn(move || {
            let mut hist = new_hist();
            let mut held = Vec::with_capacity(count);
            let mut buf = Vec::with_capacity(256);
            for i in 0..count {
                let t1 = Instant::now();
                let mut s = match shared.connect() {
                    Ok(s) => s,
                    Err(e) => {
                        shared.error("connect", &e);
                        continue;
                    }
                };
                match ping_once(&mut s, ((t as u64) << 40) + i as u64, &mut buf) {
                    Ok(echo) => {
                        shared.counters.completed.fetch_add(1, Ordering::Relaxed);
                        if matches!(echo, Echo::Lost) {
                            shared.counters.lost.fetch_add(1, Ordering::Relaxed);
                        }
                        record(&mut hist, t1.elapsed());
                        held.push(s);
                    }
                    Err(e) => shared.error("first ping", &e),
                }
            }
            (hist, held)
        }));
    }
    let mut hist = new_hist();
    let mut held = Vec::with_capacity(n);
    for h in handles {
        if let Ok((part, socks)) = h.join() {
            let _ = hist.add(part);
            held.extend(socks);
        }
    }
    let extra = format!(",\"established\":{}", held.len());
    print_json(&shared, &hist, t0.elapsed(), &extra);
    thread::sleep(Duration::from_secs_f64(shared.args.duration));
    drop(held);
}

/// The leanest thread-per-connection echo server: what the machine can do at best.
fn reference_server(addr: SocketAddr) {
    let l = match std::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("loadgen: listen on {addr}: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "Server Started Listening on {}",
        l.local_addr().map_or(addr, |a| a)
    );
    for s in l.incoming() {
        let Ok(mut s) = s else { continue };
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            loop {
                let n = match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf[..n].make_ascii_uppercase();
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        });
    }
}

fn main() {
    let args = Args::parse();
    if !(args.duration.is_finite() && args.duration >= 0.0) {
        eprintln!("loadgen: --duration must be a non-negative number of seconds");
        std::process::exit(2);
    }
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        eprintln!("loadgen: --timeout must be a positive number of seconds");
        std::process::exit(2);
    }
    let nofile = raise_nofile();
    if args.mode == Mode::Idle && (nofile as usize) < args.clients + 64 {
        eprintln!(
            "loadgen: descriptor limit {nofile} is below {} connections (raise ulimit -n)",
            args.clients
        );
    }
    let shared = Arc::new(Shared {
        args,
        counters: Counters::default(),
        first_error: Mutex::new(None),
        next_source: AtomicU64::new(0),
    });
    match shared.args.mode {
        Mode::ReferenceServer => reference_server(shared.args.addr),
        Mode::Idle => run_idle(shared),
        Mode::Conn | Mode::Persistent if shared.args.event_threads > 0 => event::run(shared),
        Mode::Conn | Mode::Persistent => run_load(shared),
    }
}

/// The event-loop engine (`--event-threads N`): each thread drives its share of the clients
/// over non-blocking sockets with mio, so the load generator itself costs few context
/// switches and leaves the CPUs to the server under test.
mod event {
    use super::*;
    use mio::net::TcpStream as MioStream;
    use mio::{Events, Interest, Poll, Token};

    /// One client of an event loop: its connection and the ping in flight on it.
    struct Client {
        stream: Option<MioStream>,
        connecting: bool,
        seq: u64,
        request: String,
        sent: usize,
        buf: Vec<u8>,
        t0: Instant,
    }

    pub fn run(shared: Arc<Shared>) {
        let n = shared.args.clients.max(1);
        let threads = shared.args.event_threads.clamp(1, n);
        let barrier = Arc::new(Barrier::new(threads + 1));
        let deadline = Arc::new(Mutex::new(None));
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            // Clients t, t + threads, t + 2 * threads, ... belong to thread t.
            let ids: Vec<u64> = (t..n).step_by(threads).map(|i| i as u64).collect();
            let (shared, barrier, deadline) = (
                Arc::clone(&shared),
                Arc::clone(&barrier),
                Arc::clone(&deadline),
            );
            handles.push(
                thread::Builder::new()
                    .spawn(move || event_loop(&shared, &ids, &barrier, &deadline))
                    .expect("spawn event loop"),
            );
        }
        go_and_report(&shared, handles, &barrier, &deadline);
    }

    /// A non-blocking connection attempt, from the next source address if any.
    fn open(shared: &Shared) -> io::Result<MioStream> {
        let addr = shared.args.addr;
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        sock.set_nodelay(true)?;
        sock.set_linger(Some(Duration::ZERO))?;
        sock.set_nonblocking(true)?;
        if !shared.args.sources.is_empty() {
            let i = shared.next_source.fetch_add(1, Ordering::Relaxed) as usize;
            let ip = shared.args.sources[i % shared.args.sources.len()];
            sock.bind(&SocketAddr::new(ip, 0).into())?;
        }
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        Ok(MioStream::from_std(sock.into()))
    }

    impl Client {
        /// Begin the next ping: a new connection unless one is kept (persistent mode).
        fn begin(&mut self, shared: &Shared, poll: &Poll, token: Token) {
            self.seq += 1;
            self.request = request(self.seq);
            self.sent = 0;
            self.buf.clear();
            self.t0 = Instant::now();
            if self.stream.is_none() {
                let mut s = match open(shared) {
                    Ok(s) => s,
                    Err(e) => {
                        shared.error("connect", &e);
                        return;
                    }
                };
                let rw = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = poll.registry().register(&mut s, token, rw) {
                    shared.error("epoll_ctl", &e);
                    return;
                }
                self.stream = Some(s);
                self.connecting = true;
                return; // the writable event sends the request
            }
            if let Some(e) = self.send() {
                shared.error("send", &e);
                self.close(poll);
            }
        }

        /// Drop the connection (RST: SO_LINGER 0).
        fn close(&mut self, poll: &Poll) {
            if let Some(mut s) = self.stream.take() {
                let _ = poll.registry().deregister(&mut s);
            }
        }

        /// Write what is left of the request; Err on a failed send.
        fn send(&mut self) -> Option<io::Error> {
            let s = self.stream.as_mut()?;
            while self.sent < self.request.len() {
                match s.write(&self.request.as_bytes()[self.sent..]) {
                    Ok(n) => self.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Some(e),
                }
            }
            None
        }

        /// Handle a readiness event: finish connecting, send, read. Returns the verdict
        /// once the answer is complete, or the failing operation.
        fn ready(&mut self, chunk: &mut [u8]) -> Option<Result<Echo, (&'static str, io::Error)>> {
            let s = self.stream.as_mut()?;
            if self.connecting {
                match s.take_error() {
                    Ok(None) => {}
                    Ok(Some(e)) | Err(e) => return Some(Err(("connect", e))),
                }
                if s.peer_addr().is_err() {
                    return None; // still connecting
                }
                self.connecting = false;
            }
            if let Some(e) = self.send() {
                return Some(Err(("send", e)));
            }
            if self.sent < self.request.len() {
                return None;
            }
            let s = self.stream.as_mut()?;
            loop {
                match s.read(chunk) {
                    Ok(0) => return Some(Err(("echo", closed()))),
                    Ok(n) => {
                        self.buf.extend_from_slice(&chunk[..n]);
                        if let Some(v) = judge(&self.request, &self.buf) {
                            return Some(v.map_err(|e| ("echo", e)));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                    Err(e) => return Some(Err(("echo", e))),
                }
            }
        }
    }

    fn event_loop(
        shared: &Shared,
        ids: &[u64],
        start: &Barrier,
        deadline: &Mutex<Option<Instant>>,
    ) -> Histogram<u64> {
        let mut hist = new_hist();
        let persistent = shared.args.mode == Mode::Persistent;
        let poll = Poll::new();
        start.wait();
        let end = deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expect("deadline set before the start");
        let poll = match poll {
            Ok(p) => p,
            Err(e) => {
                shared.error("epoll_create", &e);
                return hist;
            }
        };
        let mut clients: Vec<Client> = ids
            .iter()
            .map(|&id| Client {
                stream: None,
                connecting: false,
                seq: id << 40,
                request: String::new(),
                sent: 0,
                buf: Vec::with_capacity(256),
                t0: Instant::now(),
            })
            .collect();
        for (i, cl) in clients.iter_mut().enumerate() {
            cl.begin(shared, &poll, Token(i));
        }
        let c = &shared.counters;
        let mut events = Events::with_capacity(1024);
        let mut chunk = [0u8; 2048];
        let mut poll = poll;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            // Clients whose connect failed at once retry here, after a pause.
            if clients.iter().any(|cl| cl.stream.is_none()) {
                thread::sleep(Duration::from_millis(1));
                for (i, cl) in clients.iter_mut().enumerate() {
                    if cl.stream.is_none() {
                        cl.begin(shared, &poll, Token(i));
                    }
                }
            }
            if let Err(e) = poll.poll(&mut events, Some(end - now)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    shared.error("epoll_wait", &e);
                    break;
                }
            }
            for ev in events.iter() {
                let i = ev.token().0;
                let cl = &mut clients[i];
                match cl.ready(&mut chunk) {
                    None => {}
                    Some(Ok(echo)) => {
                        let t1 = Instant::now();
                        if t1 <= end {
                            c.completed.fetch_add(1, Ordering::Relaxed);
                            if matches!(echo, Echo::Lost) {
                                c.lost.fetch_add(1, Ordering::Relaxed);
                            }
                            record(&mut hist, t1 - cl.t0);
                        }
                        if !persistent {
                            cl.close(&poll);
                        }
                        cl.begin(shared, &poll, Token(i));
                    }
                    Some(Err((what, e))) => {
                        shared.error(what, &e);
                        cl.close(&poll);
                        cl.begin(shared, &poll, Token(i));
                    }
                }
            }
        }
        hist
    }
}
