//! `tcpping-diag HOST:PORT --pmtu`: the path MTU toward an echo server, found with echo
//! requests of chosen sizes (DF set), one at a time, each on its own connection; the search
//! itself is `probe::pmtu`. A line (or a `pmtu_probe` event) per request, then the finding
//! (a `pmtu` event).

use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::shared;
use crate::cli::{ClientConfig, Mode, Output};
use crate::error::Error;
use crate::net::Waker;
use crate::probe::connect::path_mtu;
use crate::probe::open::{self, Need, Probes, Targets};
use crate::probe::pmtu::{on_wire, Answer, Outcome, Search};
use crate::probe::{Phase, PingResult, ProbeSpec, Prober, Shape, Status};

/// The MTU of the route to `target`, as the kernel knows it (the device's, or a path MTU
/// it learnt).
fn route_mtu(target: SocketAddr) -> Result<usize, Error> {
    let any = if target.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let what = || format!("find the route's MTU toward {}", target.ip());
    let sock = UdpSocket::bind(any).map_err(|e| Error::io(what(), e))?;
    sock.connect(target).map_err(|e| Error::io(what(), e))?;
    path_mtu(sock.as_raw_fd(), target.is_ipv6())
        .ok_or_else(|| Error::Setup(format!("{}: IP_MTU unavailable", what())))
}

/// The `--json` events, fields in this order (`type` first, as every event).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    PmtuStart {
        target: &'a str,
        address: SocketAddr,
        source: Option<std::net::IpAddr>,
        route_mtu: usize,
        pmtud: &'a str,
        timeout_ms: f64,
    },
    PmtuProbe {
        seq: u64,
        size: usize,
        wire: usize,
        status: &'a str,
        router: Option<String>,
        mtu: Option<u32>,
        error: Option<&'a str>,
    },
    Pmtu {
        target: &'a str,
        address: SocketAddr,
        route_mtu: usize,
        path_mtu: Option<usize>,
        largest_request: Option<usize>,
        router: Option<String>,
        black_hole: bool,
        probes: usize,
        text: &'a str,
        elapsed_ms: f64,
    },
}

impl Event<'_> {
    fn line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a request's verdict says to the search.
fn answer_of(r: &PingResult) -> Answer {
    match &r.status {
        Status::Reply | Status::Lost => Answer::Passed,
        Status::Icmp(rep) => match rep.mtu() {
            Some(mtu) => Answer::TooBig {
                router: rep.from,
                mtu,
            },
            None => Answer::Failed(rep.describe().reason.to_string()),
        },
        Status::Timeout if r.phase == Phase::Echo => Answer::Vanished,
        Status::Timeout => Answer::Failed("no answer to the handshake".into()),
        Status::Refused => Answer::Failed("refused: nothing listens on that port".into()),
        Status::Error(e) => Answer::Failed(e.clone()),
        Status::Interrupted => Answer::Failed("interrupted".into()),
    }
}

/// Wait for the verdict of request `seq`.
fn wait_one(prober: &mut dyn Prober, seq: u64, stop: &AtomicBool) -> Result<PingResult, Error> {
    let mut done = Vec::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            prober.interrupt(&mut done);
        }
        if let Some(i) = done.iter().position(|r: &PingResult| r.seq == seq) {
            return Ok(done.swap_remove(i));
        }
        done.clear();
        prober
            .poll(Instant::now() + Duration::from_secs(3600), &mut done)
            .map_err(|e| Error::io("wait for answers", e))?;
    }
}

/// The line of one request.
fn probe_line(size: usize, wire: usize, a: &Answer, timeout: Duration) -> String {
    let what = match a {
        Answer::Passed => "passed".to_string(),
        Answer::TooBig { router, mtu } => format!("{router} says packet too big: MTU {mtu}"),
        Answer::Vanished => format!("no echo within {} ms", timeout.as_millis()),
        Answer::Failed(why) => format!("failed: {why}"),
    };
    format!("size {size} ({wire} on the wire): {what}")
}

/// The finding in words.
fn finding_text(out: &Outcome, name: &str, v6: bool) -> String {
    match out {
        Outcome::Found {
            mtu,
            largest,
            router: Some(r),
            black_hole: false,
        } => format!(
            "path MTU {mtu} to {name}: {r} reports MTU {mtu} ('packet too big'); requests of {largest} bytes pass"
        ),
        Outcome::Found {
            mtu,
            largest,
            router,
            black_hole: true,
        } => {
            let said = match router {
                Some(r) => format!("{r} reported a larger MTU than passes"),
                None => "no router reports a smaller MTU".into(),
            };
            format!(
                "path MTU {mtu} to {name}: requests up to {largest} bytes pass, larger ones vanish and {said}: a path MTU black hole"
            )
        }
        Outcome::Found { mtu, largest, .. } => format!(
            "path MTU {mtu} to {name}: the route's own MTU; requests of {largest} bytes pass"
        ),
        Outcome::SmallFails(why) if crate::probe::connect::not_echo(why) => format!(
            "{name} does not speak the echo protocol ({why}): --pmtu needs an echo server (tcpping-diag serve); toward any TCP service, trace --size N finds the hop before a smaller link"
        ),
        Outcome::SmallFails(why) => format!(
            "a 64-byte request to {name} does not pass either ({why}): not an MTU problem"
        ),
        Outcome::AtLeast { largest } => format!(
            "path MTU to {name} at least {}: requests of {largest} bytes (the largest there are) pass",
            crate::probe::pmtu::on_wire(*largest, v6)
        ),
        Outcome::Limited { largest, why } => format!(
            "requests up to {largest} bytes pass to {name}; larger ones get an answer that is not their echo ({why}): the server's limit, not the path's MTU (no black hole)"
        ),
    }
}

/// The `--pmtu` run. Returns the exit status: 0 when the path MTU was found, 1 when even a
/// small request fails (or the run was interrupted).
pub fn pmtu(cfg: &ClientConfig) -> Result<i32, Error> {
    let need = Need {
        probes: Probes::ping(Mode::Echo, cfg.flow, cfg.icmp, false),
        targets: Targets::One(cfg.target),
        timeout: cfg.timeout,
        interval: Some(cfg.interval),
        verbose: false,
        marks: crate::packet::build::Marks::tos(cfg.tos),
    };
    let waker = Arc::new(Waker::new().map_err(|e| Error::io("create wake-up channel", e))?);
    let stop = Arc::new(AtomicBool::new(false));
    let mut opened = open::open(&need, &waker, &stop)?;
    shared::on_signals(&stop, &waker)?;
    let prober = opened.prober.as_mut();
    let v6 = cfg.target.is_ipv6();
    let route = route_mtu(cfg.target)?;
    let json = cfg.output == Output::Json;
    let name = cfg.target_name.as_str();
    let mut out = io::BufWriter::new(io::stdout());
    let mut say = |line: String| -> io::Result<()> {
        writeln!(out, "{line}")?;
        out.flush()
    };
    let written = |r: io::Result<()>| shared::written(r);
    let start = if json {
        Event::PmtuStart {
            target: name,
            address: cfg.target,
            source: opened.source,
            route_mtu: route,
            pmtud: cfg.shape.pmtud.name(),
            timeout_ms: crate::event::ms(cfg.timeout),
        }
        .line()
    } else {
        format!(
            "PMTU {name} ({}) from {}: route MTU {route}, echo requests with DF (-M {}), timeout {} ms",
            cfg.target,
            opened.source.map_or("?".into(), |s| s.to_string()),
            cfg.shape.pmtud.name(),
            cfg.timeout.as_millis()
        )
    };
    if !written(say(start))? {
        return Ok(0);
    }
    let mut search = Search::new(route, v6);
    let mut seq = 0;
    let started = Instant::now();
    while let Some(size) = search.next() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        seq += 1;
        prober.set_shape(Shape {
            size: Some(size),
            pmtud: cfg.shape.pmtud,
        });
        prober.send(ProbeSpec {
            seq,
            target: cfg.target,
            ttl: cfg.ttl,
            flow: 0,
        });
        let r = wait_one(prober, seq, &stop)?;
        let a = answer_of(&r);
        let wire = on_wire(size, v6);
        let line = if json {
            let (status, router, mtu, error) = match &a {
                Answer::Passed => ("passed", None, None, None),
                Answer::TooBig { router, mtu } => {
                    ("too_big", Some(router.to_string()), Some(*mtu), None)
                }
                Answer::Vanished => ("vanished", None, None, None),
                Answer::Failed(w) => ("failed", None, None, Some(w.as_str())),
            };
            Event::PmtuProbe {
                seq,
                size,
                wire,
                status,
                router,
                mtu,
                error,
            }
            .line()
        } else {
            probe_line(size, wire, &a, cfg.timeout)
        };
        if !written(say(line))? {
            return Ok(0);
        }
        if r.status == Status::Interrupted {
            break;
        }
        search.answer(size, a);
    }
    let Some(outcome) = search.outcome().cloned() else {
        written(say("interrupted before the search ended".into()))?;
        return Ok(1);
    };
    let text = finding_text(&outcome, name, v6);
    let line = if json {
        let (mtu, largest, router, hole) = match &outcome {
            Outcome::Found {
                mtu,
                largest,
                router,
                black_hole,
            } => (
                Some(*mtu),
                Some(*largest),
                router.map(|r| r.to_string()),
                *black_hole,
            ),
            Outcome::SmallFails(_) => (None, None, None, false),
            Outcome::AtLeast { largest } | Outcome::Limited { largest, .. } => {
                (None, Some(*largest), None, false)
            }
        };
        Event::Pmtu {
            target: name,
            address: cfg.target,
            route_mtu: route,
            path_mtu: mtu,
            largest_request: largest,
            router,
            black_hole: hole,
            probes: search.tried,
            text: &text,
            elapsed_ms: crate::event::ms(started.elapsed()),
        }
        .line()
    } else {
        text
    };
    written(say(line))?;
    Ok(match outcome {
        Outcome::Found { .. } | Outcome::AtLeast { .. } | Outcome::Limited { .. } => 0,
        Outcome::SmallFails(_) => 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_request_that_fails_says_whether_the_service_speaks_the_echo_protocol() {
        // What the prober says of an SSH banner (judge_reply's own words).
        let req = b"ping 1 1700000000.123456\n";
        let Some(crate::probe::Status::Error(banner)) =
            crate::probe::connect::judge_reply(req, b"SSH-2.0-OpenSSH_9.2p1\r\n")
        else {
            panic!("a banner is an error");
        };
        let text = finding_text(&Outcome::SmallFails(banner), "h:22", false);
        assert!(
            text.starts_with("h:22 does not speak the echo protocol (unexpected reply: SSH-2.0"),
            "{text}"
        );
        assert!(text.contains("--pmtu needs an echo server"), "{text}");
        let closed = crate::probe::connect::CLOSED_BEFORE_ECHO.to_string();
        let text = finding_text(&Outcome::SmallFails(closed), "h:443", false);
        assert!(text.contains("does not speak the echo protocol"), "{text}");
        // Refused or silent: the path or the service, not the protocol.
        let text = finding_text(&Outcome::SmallFails("refused".into()), "h:1", false);
        assert_eq!(
            text,
            "a 64-byte request to h:1 does not pass either (refused): not an MTU problem"
        );
    }
}
