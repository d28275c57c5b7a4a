//! The HTTP endpoint of the metrics (`--metrics`): hyper's HTTP/1 server on one thread of its
//! own, running a current-thread tokio runtime; every connection is a task of it, so a slow
//! or stuck scraper never holds up another. The probing loop never waits for a scraper:
//! - the exposition is streamed ([`Exposition`]): each part ([`CHUNK`] bytes) is written
//!   from the model when hyper asks for more, that is when the client has read the last
//!   one; a scrape holds one part and no lock in between, however many targets;
//! - the thread runs at a lower priority (nice +10): on a busy machine the scheduler gives
//!   the probing loop its core first.
//!
//! Limits, so that no client can wedge the endpoint or grow the process:
//! - request head: at most [`Limits::header_bytes`] (then 431 and close), read within
//!   [`Limits::header_timeout`];
//! - a connection that sends nothing for [`Limits::idle`] (keep-alive included), or does not
//!   read what it is sent for [`Limits::write`], is closed;
//! - at most [`Limits::connections`] connections at once: past that, a new one is closed at once;
//! - out of descriptors (EMFILE, ENFILE) or memory, accepting backs off (100 ms, doubling to
//!   1 s) and serves again once they come back: the accept loop never ends on an error.
//!
//! [`Server::bind`] (privileged, before the capabilities are dropped) only opens the listening
//! socket; [`Server::start`] (after the drop) starts the thread.

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, Semaphore};
use tokio_io_timeout::TimeoutStream;

use super::{wants_openmetrics, Metrics, Render, OPENMETRICS_TYPE, TEXT_TYPE};

/// Bytes of exposition written at a time: what a scrape holds, besides the sockets' buffers.
pub const CHUNK: usize = 64 * 1024;

/// A response body: a fixed text, or the exposition written part by part as it is sent.
pub enum Exposition {
    Fixed(Option<Bytes>),
    Streamed(Box<Render>),
}

impl Body for Exposition {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = match self.get_mut() {
            Exposition::Fixed(b) => b.take(),
            Exposition::Streamed(r) => {
                let mut part = String::with_capacity(CHUNK + 4096);
                r.fill(&mut part, CHUNK).then(|| Bytes::from(part))
            }
        };
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Exposition::Fixed(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Exposition::Fixed(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Exposition::Streamed(_) => SizeHint::default(),
        }
    }
}

/// Lower the calling thread's priority (nice +10; a thread may always lower its own).
fn lower_priority() {
    // SAFETY: plain system calls on this thread's own id.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

/// The bounds the endpoint enforces (see the module's documentation).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of a request head (request line and headers); hyper's read buffer is twice this.
    pub header_bytes: usize,
    /// Time to receive a whole request head.
    pub header_timeout: Duration,
    /// A connection that sends nothing for this long is closed.
    pub idle: Duration,
    /// A connection that takes nothing of what it is sent for this long is closed.
    pub write: Duration,
    /// Connections served at once.
    pub connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_bytes: 8 * 1024,
            header_timeout: Duration::from_secs(5),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(5),
            connections: 256,
        }
    }
}

/// Accept errors back off from this long...
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// ...doubling up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The running endpoint: stops (and closes every connection) when dropped.
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listen on `addr` (before privileges are dropped: a port under 1024 may need them).
    /// Starts no thread.
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        let l = TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        Ok(l)
    }

    /// Serve `metrics` on the bound listener, with the default limits, until dropped.
    pub fn start(listener: TcpListener, metrics: Arc<Metrics>) -> io::Result<Server> {
        Self::start_with(listener, metrics, Limits::default())
    }

    /// Serve `metrics` on the bound listener within `limits`, until dropped.
    pub fn start_with(
        listener: TcpListener,
        metrics: Arc<Metrics>,
        limits: Limits,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        // A current-thread runtime starts no thread of its own (nothing here uses its
        // blocking pool).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let listener = {
            let _in = rt.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                lower_priority();
                rt.spawn(accept_loop(listener, metrics, limits));
                // Until the server is dropped; dropping the runtime then ends every task.
                let _ = rt.block_on(stopped);
            })?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether an accept error is a shortage that passes (descriptors, memory), to wait out,
/// rather than one connection's failure.
fn is_shortage(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

async fn accept_loop(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.connections.max(1)));
    let mut backoff = BACKOFF_MIN;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                backoff = BACKOFF_MIN;
                // Past the cap: closed at once (dropped).
                if let Ok(slot) = Arc::clone(&slots).try_acquire_owned() {
                    let m = Arc::clone(&metrics);
                    tokio::spawn(async move {
                        serve(stream, m, limits).await;
                        drop(slot);
                    });
                }
            }
            Err(e) if is_shortage(&e) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            // One connection's failure (aborted before it was accepted, ...): the next.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                ) => {}
            // Anything else: never a busy loop, never the end of the endpoint.
            Err(_) => tokio::time::sleep(BACKOFF_MIN).await,
        }
    }
}

async fn serve(stream: tokio::net::TcpStream, metrics: Arc<Metrics>, limits: Limits) {
    let _ = stream.set_nodelay(true);
    let mut io = TimeoutStream::new(stream);
    io.set_read_timeout(Some(limits.idle));
    io.set_write_timeout(Some(limits.write));
    let io = TokioIo::new(Box::pin(io));
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let resp = respond(&req, &metrics);
        async move { Ok::<_, Infallible>(resp) }
    });
    let header_bytes = limits.header_bytes.max(4096);
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(header_bytes)
        // hyper's minimum is 8 KiB.
        .max_buf_size((2 * header_bytes).max(8192))
        .max_headers(64)
        .serve_connection(io, svc)
        .await;
}

fn text(status: StatusCode, body: &'static str) -> Response<Exposition> {
    let mut r = Response::new(Exposition::Fixed(Some(Bytes::from_static(body.as_bytes()))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The answer to one request: `GET`/`HEAD` of `/metrics` (the exposition, streamed; no
/// body for `HEAD`), of `/` (a pointer to it); any other path 404, any other method 405.
fn respond<B>(req: &Request<B>, metrics: &Arc<Metrics>) -> Response<Exposition> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/" => return text(StatusCode::OK, "tcpping-diag: metrics at /metrics\n"),
        "/metrics" => {}
        _ => return text(StatusCode::NOT_FOUND, "not found: try /metrics\n"),
    }
    let accept = req
        .headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let om = wants_openmetrics((!accept.is_empty()).then_some(accept.as_str()));
    let body = if req.method() == Method::HEAD {
        Exposition::Fixed(None)
    } else {
        Exposition::Streamed(Box::new(Render::new(Arc::clone(metrics), om)))
    };
    let ctype = if om { OPENMETRICS_TYPE } else { TEXT_TYPE };
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    fn start(limits: Limits) -> Server {
        let l = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        Server::start_with(l, Arc::new(Metrics::default()), limits).unwrap()
    }

    /// Whether the server closes `s` within `within` (EOF or reset).
    fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        s.set_read_timeout(Some(within)).unwrap();
        let mut b = [0u8; 4096];
        loop {
            match s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    fn get(addr: SocketAddr) -> io::Result<String> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
        let mut all = String::new();
        s.read_to_string(&mut all)?;
        Ok(all)
    }

    #[test]
    fn connections_past_the_cap_are_closed_at_once_and_served_again_after() {
        let srv = start(Limits {
            connections: 2,
            ..Limits::default()
        });
        let a = TcpStream::connect(srv.addr()).unwrap();
        let b = TcpStream::connect(srv.addr()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut third = TcpStream::connect(srv.addr()).unwrap();
        let t0 = Instant::now();
        assert!(closed_within(&mut third, Duration::from_secs(2)));
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        drop((a, b));
        std::thread::sleep(Duration::from_millis(200));
        let got = get(srv.addr()).unwrap();
        assert!(got.starts_with("HTTP/1.0 200"), "{got}");
    }

    #[test]
    fn an_idle_keep_alive_connection_is_closed() {
        let srv = start(Limits {
            idle: Duration::from_millis(300),
            header_timeout: Duration::from_secs(30),
            ..Limits::default()
        });
        let mut s = TcpStream::connect(srv.addr()).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut b = [0u8; 4096];
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let n = s.read(&mut b).unwrap();
        assert!(b[..n].starts_with(b"HTTP/1.1 200"));
        let t0 = Instant::now();
        assert!(closed_within(&mut s, Duration::from_secs(3)), "kept open");
        assert!(
            t0.elapsed() >= Duration::from_millis(250),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn dropping_the_server_closes_the_port() {
        let srv = start(Limits::default());
        let addr = srv.addr();
        assert!(get(addr).unwrap().contains("tcpping_targets 0"));
        drop(srv);
        assert!(TcpStream::connect(addr).is_err());
    }
}
