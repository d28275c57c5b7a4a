//! Pictures: `report` and `--plot` on real runs against the real server on loopback, and on
//! synthetic files (many targets with the coming `target`/`labels` fields, the trace draft,
//! a million probes). Each SVG is parsed (its structure: a series per target, one mark per
//! failed probe, axis words, the title) and rendered by a real SVG renderer (rsvg-convert).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

const ECHO: &str = "#0072B2";
const CONNECT: &str = "#E69F00";
const LOST: &str = "#D55E00";
const REFUSED: &str = "#CC79A7";
const ICMP1: &str = "#009E73";
const BREAK: &str = "#D55E00";

/// A scratch directory, removed on drop.
struct Dir(PathBuf);
impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("tpd-report-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn report(args: &[&Path]) -> Output {
    Command::new(BIN)
        .arg("report")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run report")
}

fn ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {}\nstderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Render with librsvg, as a person's viewer would; the PNG must be a real picture of the
/// SVG's size.
fn render(svg: &Path) {
    let png = svg.with_extension("png");
    let out = Command::new("rsvg-convert")
        .arg(svg)
        .arg("-o")
        .arg(&png)
        .output()
        .unwrap_or_else(|e| {
            panic!("rsvg-convert: {e} (apt-get install librsvg2-bin; scripts/test.sh installs it)")
        });
    assert!(
        out.status.success(),
        "rsvg-convert failed on {}: {}",
        svg.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    let text = std::fs::read_to_string(svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let root = doc.root_element();
    assert_eq!(w.to_string(), root.attribute("width").unwrap());
    assert_eq!(h.to_string(), root.attribute("height").unwrap());
    assert!(bytes.len() > 5_000, "PNG of {} bytes", bytes.len());
}

/// The parts of an SVG the tests look at.
struct Svg {
    text: String,
}

#[derive(Debug, Clone)]
struct El {
    tag: String,
    attrs: BTreeMap<String, String>,
    text: String,
}

impl El {
    fn num(&self, a: &str) -> f64 {
        self.attrs[a].parse().unwrap()
    }
    fn fill(&self) -> &str {
        self.attrs.get("fill").map(String::as_str).unwrap_or("")
    }
}

impl Svg {
    fn load(p: &Path) -> Svg {
        Svg {
            text: std::fs::read_to_string(p).unwrap(),
        }
    }
    fn elements(&self) -> Vec<El> {
        let doc = roxmltree::Document::parse(&self.text).expect("the SVG is XML");
        doc.descendants()
            .filter(|n| n.is_element())
            .map(|n| El {
                tag: n.tag_name().name().to_string(),
                attrs: n
                    .attributes()
                    .map(|a| (a.name().to_string(), a.value().to_string()))
                    .collect(),
                text: n.text().unwrap_or("").trim().to_string(),
            })
            .collect()
    }
    fn texts(&self) -> Vec<El> {
        self.elements()
            .into_iter()
            .filter(|e| e.tag == "text")
            .collect()
    }
    fn has_text(&self, needle: &str) -> bool {
        self.texts().iter().any(|t| t.text.contains(needle))
    }
    fn text_with(&self, needle: &str) -> El {
        self.texts()
            .into_iter()
            .find(|t| t.text.contains(needle))
            .unwrap_or_else(|| panic!("no text with {needle:?} in {:#?}", self.all_text()))
    }
    fn all_text(&self) -> Vec<String> {
        self.texts().into_iter().map(|t| t.text).collect()
    }
    fn count(&self, tag: &str, fill: &str) -> usize {
        self.elements()
            .iter()
            .filter(|e| e.tag == tag && e.fill() == fill)
            .count()
    }
    /// Elements `tag` of colour `fill` whose centre y is in [y0, y1).
    fn count_in(&self, tag: &str, fill: &str, y0: f64, y1: f64) -> usize {
        self.elements()
            .iter()
            .filter(|e| e.tag == tag && e.fill() == fill)
            .filter(|e| {
                let y = match tag {
                    "circle" => e.num("cy"),
                    "rect" => e.num("y") + e.num("height") / 2.0,
                    _ => {
                        let pts = &e.attrs["points"];
                        let ys: Vec<f64> = pts
                            .split_whitespace()
                            .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
                            .collect();
                        ys.iter().sum::<f64>() / ys.len() as f64
                    }
                };
                y >= y0 && y < y1
            })
            .count()
    }
}

fn count_status(events: &[serde_json::Value], status: &str) -> usize {
    pings(events)
        .iter()
        .filter(|p| p["status"] == status)
        .count()
}

fn run_to_file(args: &[&str], file: &Path) -> Vec<serde_json::Value> {
    let out = client(args);
    std::fs::write(file, &out.stdout).unwrap();
    json_lines(&out)
}

#[test]
fn ping_picture_of_a_real_run_has_a_point_per_reply_and_a_mark_per_lost_ping() {
    let d = Dir::new("ping");
    let srv = ServerProc::start(&["--loss", "0.3", "--seed", "7", "-q"]);
    let addr = srv.addr.to_string();
    let file = d.path("run.ndjson");
    let ev = run_to_file(&[&addr, "-n", "60", "-i", "0.005", "--json"], &file);
    let (replies, lost) = (count_status(&ev, "reply"), count_status(&ev, "lost"));
    assert!(replies > 0 && lost > 0, "seed 7 at 30 % loses some of 60");
    let with_connect = pings(&ev)
        .iter()
        .filter(|p| p["connect_ms"].is_number())
        .count();

    let svg_path = d.path("ping.svg");
    let out = report(&[&file, Path::new("-o"), &svg_path]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ping: 1 target, 60 probes"));
    let svg = Svg::load(&svg_path);
    // Title: target and source; subtitle: the time span in UTC.
    let title = svg.text_with("TCP ping to");
    assert!(
        title.text.contains(&addr) && title.text.contains("from 127.0.0.1"),
        "{}",
        title.text
    );
    assert!(svg.has_text(" UTC ("), "{:?}", svg.all_text());
    assert!(svg.has_text(&format!("60 probes: {replies} replies, {lost} failed")));
    // Axes with units.
    assert!(svg.has_text("RTT (ms)"));
    assert!(svg.has_text("time since ") && svg.text_with("time since ").text.ends_with("(s)"));
    // One point per reply and per completed handshake (+ the legend's own mark).
    assert_eq!(svg.count("circle", ECHO), replies + 1);
    assert_eq!(svg.count("polygon", CONNECT), with_connect + 1);
    // One failure mark per LOST ping, in a row named with the count (+ the legend swatch).
    assert_eq!(svg.count("rect", LOST), lost + 1);
    assert!(svg.has_text(&format!("LOST ({lost})")));
    assert!(svg.has_text(&format!("LOST: the server dropped it: {lost} (")));
    render(&svg_path);
}

#[test]
fn one_probe_draws_too() {
    let d = Dir::new("one");
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let file = d.path("one.ndjson");
    run_to_file(&[&srv.addr.to_string(), "-n", "1", "--json"], &file);
    let svg_path = d.path("one.svg");
    ok(&report(&[&file, Path::new("-o"), &svg_path]));
    let svg = Svg::load(&svg_path);
    assert_eq!(svg.count("circle", ECHO), 2);
    assert!(svg.has_text("none: every probe was answered"));
    render(&svg_path);
}

#[test]
fn plot_flag_draws_the_run_and_on_ctrl_c_what_was_done() {
    let d = Dir::new("plot");
    let srv = ServerProc::start(&["--loss", "0.3", "--seed", "11", "-q"]);
    let addr = srv.addr.to_string();
    let svg_path = d.path("live.svg");
    let out = client(&[
        &addr,
        "-n",
        "30",
        "-i",
        "0",
        "--json",
        "--plot",
        svg_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let ev = json_lines(&out);
    let svg = Svg::load(&svg_path);
    assert_eq!(svg.count("circle", ECHO), count_status(&ev, "reply") + 1);
    assert_eq!(svg.count("rect", LOST), count_status(&ev, "lost") + 1);
    assert!(svg.text_with("TCP ping to").text.contains(&addr));
    render(&svg_path);

    // Until interrupted: SIGINT ends the run, and the picture has every ping sent.
    let svg_path = d.path("interrupted.svg");
    let child = Command::new(BIN)
        .args([&addr, "-i", "0.02", "--json", "--plot"])
        .arg(&svg_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let ev = json_lines(&out);
    let sent = summary(&ev)["sent"].as_u64().unwrap();
    assert!(sent >= 5, "{sent}");
    let svg = Svg::load(&svg_path);
    assert!(
        svg.has_text(&format!("{sent} probes: ")),
        "{:?}",
        svg.all_text()
    );
    render(&svg_path);
}

#[test]
fn many_targets_one_row_each_worst_first_from_real_runs() {
    let d = Dir::new("many");
    let lossy = ServerProc::start(&["--loss", "0.5", "--seed", "3", "-q"]);
    let good = ServerProc::start(&["--loss", "0", "-q"]);
    let closed = closed_port().to_string();
    let mut files = Vec::new();
    let mut expect = Vec::new(); // (target, replies, failures, loss)
    for (i, (addr, n)) in [
        (good.addr.to_string(), "25"),
        (lossy.addr.to_string(), "30"),
        (closed.clone(), "6"),
    ]
    .iter()
    .enumerate()
    {
        let f = d.path(&format!("{i}.ndjson"));
        let ev = run_to_file(&[addr, "-n", n, "-i", "0.005", "--json"], &f);
        let s = summary(&ev);
        let sent = s["sent"].as_u64().unwrap() as usize;
        let replies = count_status(&ev, "reply");
        expect.push((
            addr.clone(),
            replies,
            sent - replies,
            s["loss_pct"].as_f64().unwrap(),
        ));
        files.push(f);
    }
    let svg_path = d.path("many.svg");
    let mut args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    args.extend([Path::new("-o"), &svg_path]);
    ok(&report(&args));
    let svg = Svg::load(&svg_path);
    assert!(svg
        .text_with("TCP ping to 3 targets")
        .text
        .contains("from 127.0.0.1"));
    // Row titles (bold), top to bottom: worst first, by loss.
    let mut rows: Vec<El> = svg
        .texts()
        .into_iter()
        .filter(|t| t.attrs.contains_key("font-weight") && expect.iter().any(|e| e.0 == t.text))
        .collect();
    rows.sort_by(|a, b| a.num("y").total_cmp(&b.num("y")));
    assert_eq!(rows.len(), 3, "{:?}", svg.all_text());
    let order: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let mut sorted = expect.clone();
    sorted.sort_by(|a, b| b.3.total_cmp(&a.3));
    assert_eq!(
        order,
        sorted.iter().map(|e| e.0.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(order[0], closed, "the refused target has 100 % loss");
    // Each row: its own series, a point per reply and a mark per failure, within its band.
    for (i, r) in rows.iter().enumerate() {
        let y0 = r.num("y");
        let y1 = rows.get(i + 1).map_or(f64::MAX, |n| n.num("y"));
        let e = expect.iter().find(|e| e.0 == r.text).unwrap();
        assert_eq!(
            svg.count_in("circle", ECHO, y0, y1),
            e.1,
            "replies of {}",
            e.0
        );
        let fails = svg.count_in("rect", LOST, y0, y1) + svg.count_in("rect", REFUSED, y0, y1);
        // The failure legend (a LOST and a refused swatch) is below the last row.
        let legend = if i + 1 == rows.len() { 2 } else { 0 };
        assert_eq!(fails, e.2 + legend, "failures of {}", e.0);
    }
    assert!(svg.has_text("refused: RST, nothing listens on the port: 6"));
    assert!(svg.has_text("time since "));
    render(&svg_path);
}

#[test]
fn many_targets_interleaved_with_target_and_labels_fields() {
    let d = Dir::new("labels");
    let f = d.path("m.ndjson");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&f).unwrap());
    let targets = [
        ("db1.example:5432", "db1", 0u64),
        ("web.example:443", "web", 4),
        ("cache.example:6379", "cache", 2),
    ];
    for (t, name, _) in targets {
        writeln!(w, r#"{{"type":"start","target":"{t}","labels":{{"name":"{name}","tier":"prod"}},"address":"192.0.2.1:1","source":"192.0.2.9","host":"probe-1","interval_ms":100.0,"ts":1800000000.0}}"#).unwrap();
    }
    for seq in 1..=40u64 {
        for (i, (t, name, every)) in targets.iter().enumerate() {
            let ts = 1800000000.0 + seq as f64 * 0.1 + i as f64 * 0.01;
            let line = if *every > 0 && seq % every == 0 {
                format!(
                    r#"{{"type":"ping","target":"{t}","labels":{{"name":"{name}"}},"seq":{seq},"ts":{ts},"status":"icmp","connect_ms":null,"rtt_ms":null,"icmp":{{"type":3,"code":1,"from":"192.0.2.254","reason":"destination host unreachable"}}}}"#
                )
            } else {
                format!(
                    r#"{{"type":"ping","target":"{t}","seq":{seq},"ts":{ts},"status":"reply","connect_ms":0.2,"rtt_ms":{}}}"#,
                    1.0 + i as f64
                )
            };
            writeln!(w, "{line}").unwrap();
        }
    }
    drop(w);
    let svg_path = d.path("labels.svg");
    ok(&report(&[&f, Path::new("-o"), &svg_path]));
    let svg = Svg::load(&svg_path);
    let mut rows: Vec<El> = svg
        .texts()
        .into_iter()
        .filter(|t| ["db1", "web", "cache"].contains(&t.text.as_str()))
        .collect();
    rows.sort_by(|a, b| a.num("y").total_cmp(&b.num("y")));
    let order: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    // web loses 25 %, cache 50 %, db1 nothing.
    assert_eq!(order, ["cache", "web", "db1"]);
    assert!(
        svg.has_text("web.example:443  ·  25.0 % loss"),
        "{:?}",
        svg.all_text()
    );
    assert!(svg
        .text_with("TCP ping to 3 targets")
        .text
        .contains("on probe-1"));
    for (i, r) in rows.iter().enumerate() {
        let y1 = rows.get(i + 1).map_or(f64::MAX, |n| n.num("y"));
        let (_, _, every) = targets.iter().find(|t| t.1 == r.text).unwrap();
        let fails = if *every > 0 { 40 / every } else { 0 } as usize;
        assert_eq!(
            svg.count_in("circle", ECHO, r.num("y"), y1),
            40 - fails,
            "{}",
            r.text
        );
        let marks = svg.count_in("rect", ICMP1, r.num("y"), y1);
        let legend = usize::from(i + 1 == rows.len());
        assert_eq!(marks, fails + legend, "{}", r.text);
    }
    assert!(svg.has_text("ICMP 3/1 from 192.0.2.254: destination host unreachable: 30"));
    render(&svg_path);
}

#[test]
fn trace_picture_boxes_per_hop_the_break_and_the_verdict() {
    let d = Dir::new("trace");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trace-path-ends.ndjson");
    let svg_path = d.path("trace.svg");
    let out = report(&[&fixture, Path::new("-o"), &svg_path]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("trace: 6 hops"));
    let svg = Svg::load(&svg_path);
    assert!(svg
        .text_with("TCP trace to 10.77.2.2:12007")
        .text
        .contains("from 10.77.1.2 on lab-client"));
    assert!(svg.has_text(
        "Verdict: path ends at hop 4: 203.0.113.254 says communication administratively prohibited"
    ));
    assert!(svg.has_text("RTT (ms)"));
    // One box per hop that answered (hops 1-4; + the legend's), two hops with no answer.
    let boxes = svg
        .elements()
        .into_iter()
        .filter(|e| e.tag == "rect" && e.fill() == ECHO && e.attrs["opacity"] == "0.35")
        .count();
    assert_eq!(boxes, 4 + 1);
    assert_eq!(
        svg.texts()
            .iter()
            .filter(|t| t.text == "no answer (9 probes)")
            .count(),
        2
    );
    // The break: one shaded row (+ legend), labelled, at hop 4's height.
    let shaded: Vec<El> = svg
        .elements()
        .into_iter()
        .filter(|e| e.tag == "rect" && e.fill() == BREAK && e.attrs["opacity"] == "0.18")
        .collect();
    assert_eq!(shaded.len(), 2);
    let hop4 = svg
        .texts()
        .into_iter()
        .find(|t| t.text == "4" && t.attrs.contains_key("font-weight"))
        .expect("hop 4 label");
    let row = shaded
        .iter()
        .max_by(|a, b| a.num("width").total_cmp(&b.num("width")))
        .unwrap();
    assert!(row.num("y") < hop4.num("y") && hop4.num("y") < row.num("y") + row.num("height"));
    assert!(svg.has_text("path breaks here"));
    assert!(svg.has_text("203.0.113.254"));
    assert!(svg.has_text("100 %  (0/9)"));
    assert!(svg.has_text("11 %  (8/9)"));
    render(&svg_path);
}

#[test]
fn a_million_probes_make_a_small_bucketed_picture() {
    let d = Dir::new("million");
    let f = d.path("big.ndjson");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&f).unwrap());
    writeln!(w, r#"{{"type":"start","target":"big:1","address":"10.0.0.1:1","source":"10.0.0.2","host":"h","interval_ms":10.0,"ts":1800000000.0}}"#).unwrap();
    // 1,000,000 probes 10 ms apart: every 10th LOST; from 4000 s to 4600 s, every odd one
    // an ICMP error.
    let (mut lost, mut icmp) = (0u64, 0u64);
    for k in 0..1_000_000u64 {
        let t = k as f64 * 0.01;
        let ts = 1800000000.0 + t;
        if k % 10 == 0 {
            lost += 1;
            writeln!(w, r#"{{"type":"ping","seq":{},"ts":{ts:.6},"status":"lost","connect_ms":0.1,"rtt_ms":0.3}}"#, k + 1).unwrap();
        } else if (4000.0..4600.0).contains(&t) && k % 2 == 1 {
            icmp += 1;
            writeln!(w, r#"{{"type":"ping","seq":{},"ts":{ts:.6},"status":"icmp","icmp":{{"type":3,"code":13,"from":"10.0.0.254","reason":"communication administratively prohibited"}}}}"#, k + 1).unwrap();
        } else {
            writeln!(w, r#"{{"type":"ping","seq":{},"ts":{ts:.6},"status":"reply","connect_ms":0.1,"rtt_ms":{:.3}}}"#, k + 1, 0.2 + (k % 50) as f64 * 0.01).unwrap();
        }
    }
    writeln!(w, "{{\"type\":\"ping\",\"seq\":1000001,\"ts\":18").unwrap(); // killed mid-write
    drop(w);
    let svg_path = d.path("big.svg");
    let out = report(&[&f, Path::new("-o"), &svg_path]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped 1 unreadable lines"));
    let size = std::fs::metadata(&svg_path).unwrap().len();
    assert!(size <= 2_000_000, "SVG of {size} bytes");
    let svg = Svg::load(&svg_path);
    assert!(svg.has_text("1,000,000 probes"));
    assert!(svg.has_text(&format!(
        "LOST: the server dropped it: {} (",
        thousands(lost)
    )));
    assert!(svg.has_text(&format!(
        "communication administratively prohibited: {} (",
        thousands(icmp)
    )));
    assert!(svg.has_text("1 unreadable lines skipped"));
    // Bucketed: bands, a median line, and loss bars per bucket; no point per probe.
    assert_eq!(svg.count("circle", ECHO), 0);
    assert!(
        svg.has_text("median echo RTT per 1m"),
        "{:?}",
        svg.all_text()
    );
    let desc = svg.text_with("loss per 1m (%)");
    assert!(desc.attrs["transform"].starts_with("rotate(270"));
    // 10,000 s in 1-minute buckets: 167, each with a tenth LOST: one LOST bar per bucket,
    // all of one height (the last, partial bucket too).
    let bars = |fill: &str| -> Vec<El> {
        svg.elements()
            .into_iter()
            .filter(|e| e.tag == "rect" && e.fill() == fill && e.attrs["opacity"] == "1")
            .collect()
    };
    let lost_bars = bars(LOST);
    assert_eq!(lost_bars.len(), 167 + 1, "LOST bars + legend");
    let h = lost_bars[0].num("height");
    assert!(lost_bars[..167]
        .iter()
        .all(|b| (b.num("height") - h).abs() <= 1.0));
    // ICMP in the buckets of 4000-4600 s (66 to 76): 11 bars, the full ones (half the
    // probes against a tenth) 5 times as high as the LOST bars, give or take a pixel each.
    let icmp_bars = bars(ICMP1);
    assert_eq!(icmp_bars.len(), 11 + 1, "ICMP bars + legend");
    let tallest = icmp_bars
        .iter()
        .map(|b| b.num("height"))
        .fold(0.0, f64::max);
    assert!((tallest / h - 5.0).abs() < 0.6, "{tallest} vs {h}");
    render(&svg_path);
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn old_files_without_start_or_ts_are_drawn_by_sequence_number() {
    let d = Dir::new("old");
    let f = d.path("old.ndjson");
    let mut text = String::new();
    for seq in 1..=20 {
        let st = if seq % 5 == 0 { "timeout" } else { "reply" };
        text += &format!(
            r#"{{"type":"ping","seq":{seq},"status":"{st}","connect_ms":null,"rtt_ms":1.5}}"#
        );
        text.push('\n');
    }
    std::fs::write(&f, text).unwrap();
    let svg_path = d.path("old.svg");
    ok(&report(&[&f, Path::new("-o"), &svg_path]));
    let svg = Svg::load(&svg_path);
    assert!(svg.has_text("probe number (the file has no timestamps)"));
    assert!(svg.has_text("probes 1 to 20, no timestamps"));
    assert!(svg.has_text("timeout (no handshake) (4)"));
    assert_eq!(svg.count("circle", ECHO), 16 + 1);
    render(&svg_path);
}

#[test]
fn bad_input_is_a_clear_error() {
    let d = Dir::new("bad");
    let svg_path = d.path("x.svg");
    // Nothing to draw.
    let f = d.path("garbage.ndjson");
    std::fs::write(&f, "hello\nworld\n{\"type\":\"unmatched_icmp\"}\n").unwrap();
    let out = report(&[&f, Path::new("-o"), &svg_path]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no ping or trace events to draw"), "{err}");
    assert!(err.contains("garbage.ndjson:1: not a JSON object"), "{err}");
    assert!(!svg_path.exists());
    // A file that is not there.
    let out = report(&[&d.path("missing.ndjson"), Path::new("-o"), &svg_path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("open "));
    // Binary junk on stdin.
    let mut child = Command::new(BIN)
        .args(["report", "-", "-o"])
        .arg(&svg_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&(0..=255u8).cycle().take(100_000).collect::<Vec<u8>>())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // No -o.
    let out = report(&[&f]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--output"));
}

#[test]
fn many_targets_bucketed_a_median_line_and_loss_bars_per_target() {
    let d = Dir::new("manyb");
    let f = d.path("m.ndjson");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&f).unwrap());
    // 3 targets x 1,000 probes, 1 s apart: 3,000 probes, too many for points; 10 s buckets.
    let targets = [("a:1", 0u64), ("b:1", 4), ("c:1", 0)];
    for seq in 1..=1000u64 {
        for (i, (t, every)) in targets.iter().enumerate() {
            let ts = 1800000000.0 + seq as f64 + i as f64 * 0.01;
            let st = if *every > 0 && seq % every == 0 {
                "lost"
            } else {
                "reply"
            };
            writeln!(w, r#"{{"type":"ping","target":"{t}","seq":{seq},"ts":{ts},"status":"{st}","connect_ms":0.5,"rtt_ms":{}}}"#, 1.0 + i as f64 + (seq % 7) as f64 * 0.1).unwrap();
        }
    }
    drop(w);
    let svg_path = d.path("manyb.svg");
    ok(&report(&[&f, Path::new("-o"), &svg_path]));
    let svg = Svg::load(&svg_path);
    assert_eq!(svg.count("circle", ECHO), 0, "bands, not points");
    let mut rows: Vec<El> = svg
        .texts()
        .into_iter()
        .filter(|t| t.attrs.contains_key("font-weight") && targets.iter().any(|x| x.0 == t.text))
        .collect();
    rows.sort_by(|a, b| a.num("y").total_cmp(&b.num("y")));
    let order: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    // b loses a quarter; then by median: c (3.x ms) before a (1.x ms).
    assert_eq!(order, ["b:1", "c:1", "a:1"]);
    let elements = svg.elements();
    for (i, r) in rows.iter().enumerate() {
        let (y0, y1) = (r.num("y"), rows.get(i + 1).map_or(f64::MAX, |n| n.num("y")));
        let in_row = |e: &&El| {
            let ys: Vec<f64> = e.attrs["points"]
                .split_whitespace()
                .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
                .collect();
            ys.iter().all(|&y| y >= y0 && y < y1)
        };
        let lines = |stroke: &str| {
            elements
                .iter()
                .filter(|e| {
                    e.tag == "polyline" && e.attrs.get("stroke").map(String::as_str) == Some(stroke)
                })
                .filter(in_row)
                .count()
        };
        assert_eq!(lines(ECHO), 1, "one median echo line for {}", r.text);
        assert_eq!(lines(CONNECT), 1, "one median connect line for {}", r.text);
        // b: a quarter lost in every one of its 100 buckets; the others none.
        let bars = svg.count_in("rect", LOST, y0, y1);
        let legend = usize::from(i + 1 == rows.len());
        let want = if r.text == "b:1" { 100 } else { 0 };
        assert_eq!(bars, want + legend, "loss bars of {}", r.text);
        assert!(svg.has_text(&format!("{}  ·  buckets of 10s", "1,000 probes")));
    }
    render(&svg_path);
}

/// Run the binary with `args` (stdin: `stdin`'s bytes then closed, or held open when None),
/// killed if it has not ended within `secs`.
fn run_within(args: &[&std::ffi::OsStr], stdin: Option<&[u8]>, secs: u64) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = child.stdin.take().unwrap();
    let stdin = stdin.map(<[u8]>::to_vec);
    let feeder = std::thread::spawn(move || {
        let mut pipe = pipe;
        match stdin {
            Some(b) => {
                let _ = pipe.write_all(&b);
            }
            // Held open until the test's end: a reader that waits for the end never ends.
            None => std::thread::sleep(Duration::from_secs(secs + 1)),
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{args:?} still running after {secs} s; stderr {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(feeder);
    child.wait_with_output().unwrap()
}

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ping_line(seq: u64, ts: &str) -> String {
    format!(
        r#"{{"type":"ping","seq":{seq},"ts":{ts},"status":"reply","connect_ms":0.2,"rtt_ms":1.0}}"#
    )
}

#[test]
fn nonsense_times_finish_with_one_line() {
    let d = Dir::new("times");
    let f = d.path("t.ndjson");
    let lines = [
        ping_line(1, "-1e308"),
        ping_line(2, "1e308"),
        ping_line(3, "1800000000.0"),
        ping_line(4, "1800000001.0"),
    ];
    std::fs::write(&f, lines.join("\n")).unwrap();
    let svg = d.path("t.svg");
    let out = run_within(&[os("report"), os(&f), os("-o"), os(&svg)], Some(b""), 20);
    ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("2 pings with a time beyond ±1e12 s skipped (first: ts -1e308)"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 target, 2 probes"));
    Svg::load(&svg).elements();
    // Only nonsense: nothing to draw, said so.
    std::fs::write(&f, lines[..2].join("\n")).unwrap();
    let out = run_within(&[os("report"), os(&f), os("-o"), os(&svg)], Some(b""), 20);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no ping or trace events"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_line_longer_than_a_mib_is_skipped_named_and_reading_goes_on() {
    let d = Dir::new("long");
    let f = d.path("long.ndjson");
    let mut text = ping_line(1, "1800000000.0").into_bytes();
    text.push(b'\n');
    // Line 2: 5 MiB of one JSON string, no newline until its end.
    text.extend_from_slice(br#"{"type":"ping","seq":9,"status":"reply","error":""#);
    text.extend(std::iter::repeat_n(b'x', 5 << 20));
    text.extend_from_slice(b"\"}\n");
    for seq in 2..=3 {
        text.extend(ping_line(seq, &format!("180000000{seq}.0")).into_bytes());
        text.push(b'\n');
    }
    std::fs::write(&f, &text).unwrap();
    let svg = d.path("long.svg");
    let out = run_within(&[os("report"), os(&f), os("-o"), os(&svg)], Some(b""), 30);
    ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("long.ndjson line 2: longer than 1048576 bytes, skipped"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 target, 3 probes"),
        "the lines after the long one are read"
    );
    // From a pipe too.
    let out = run_within(&[os("report"), os("-o"), os(&svg)], Some(&text), 30);
    ok(&out);
    assert!(stderr(&out).contains("<stdin> line 2: longer than 1048576 bytes, skipped"));
}

/// Control characters, non-characters and markup in every field a picture shows, from files
/// and from a live run's targets file: every picture parses as XML and shows none of them.
#[test]
fn hostile_text_makes_well_formed_pictures() {
    let d = Dir::new("hostile");
    let h = r#"x\u0001\u001b[31m\u007f\u0085\ufffe\uffff\t\n<&>\"'y"#;
    let ping = [
        format!(
            r#"{{"type":"start","target":"{h}","address":"{h}","source":"{h}","host":"{h}","mode":"{h}","ts":1800000000.0,"interval_ms":10.0,"labels":{{"name":"{h}"}}}}"#
        ),
        format!(r#"{{"type":"ping","seq":1,"ts":1800000000.0,"status":"error","error":"{h}"}}"#),
        format!(
            r#"{{"type":"ping","seq":2,"ts":1800000000.1,"status":"icmp","icmp":{{"type":3,"code":13,"from":"{h}","reason":"{h}"}}}}"#
        ),
        format!(r#"{{"type":"ping","seq":3,"ts":1800000000.2,"status":"{h}"}}"#),
        ping_line(4, "1800000000.3"),
        format!(
            r#"{{"type":"ping","target":"{h}2","labels":{{"name":"{h}2"}},"seq":1,"ts":1800000000.0,"status":"reply","rtt_ms":2.0}}"#
        ),
    ];
    let trace = [
        format!(
            r#"{{"type":"trace_start","target":"{h}","address":"{h}","source":"{h}","host":"{h}","ts":1800000000.0}}"#
        ),
        format!(
            r#"{{"type":"probe","hop":1,"status":"time_exceeded","from":"{h}","rtt_ms":0.5,"icmp":{{"type":11,"code":0,"reason":"{h}"}}}}"#
        ),
        format!(r#"{{"type":"probe","hop":2,"status":"{h}","from":"{h}"}}"#),
        format!(r#"{{"type":"hop","hop":1,"routers":["{h}"],"sent":1,"received":1}}"#),
        format!(
            r#"{{"type":"trace","verdict":"{h}","hops":2,"break_hop":2,"break_router":"{h}","text":"{h}"}}"#
        ),
    ];
    let check = |svg: &Path| {
        let s = Svg::load(svg);
        s.elements(); // parses
        let bad: Vec<char> = s
            .text
            .chars()
            .filter(|&c| (c.is_control() && c != '\n') || c == '\u{FFFE}' || c == '\u{FFFF}')
            .collect();
        assert!(bad.is_empty(), "{bad:?} in {}", svg.display());
        s
    };
    for (name, lines) in [
        ("one", &ping[..5]),
        ("many", &ping[..]),
        ("trace", &trace[..]),
    ] {
        let f = d.path(&format!("{name}.ndjson"));
        std::fs::write(&f, lines.join("\n")).unwrap();
        let svg = d.path(&format!("{name}.svg"));
        ok(&report(&[&f, Path::new("-o"), &svg]));
        let s = check(&svg);
        assert!(
            s.text.contains("x\u{FFFD}\u{FFFD}["),
            "{name}: shown as U+FFFD"
        );
        render(&svg);
    }
    // A live run of many targets, their names from a targets file.
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let targets = d.path("targets");
    std::fs::write(
        &targets,
        format!(
            "{} name=a\x01\x1b[1m\x7f<&>\"'b\n{} name=c\u{9f}d\n",
            srv.addr,
            closed_port()
        ),
    )
    .unwrap();
    let svg = d.path("live.svg");
    let out = client(&[
        "-f",
        targets.to_str().unwrap(),
        "-n",
        "3",
        "-i",
        "0.01",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = check(&svg);
    assert!(
        s.has_text("a\u{FFFD}\u{FFFD}[1m\u{FFFD}<&>\"'b"),
        "{:?}",
        s.all_text()
    );
    assert!(s.has_text("c\u{FFFD}d"), "{:?}", s.all_text());
    render(&svg);
}

#[test]
fn plot_with_several_targets_draws_a_row_per_target() {
    let d = Dir::new("plotmany");
    let lossy = ServerProc::start(&["--loss", "0.4", "--seed", "5", "-q"]);
    let good = ServerProc::start(&["--loss", "0", "-q"]);
    let (a, b) = (good.addr.to_string(), lossy.addr.to_string());
    let svg_path = d.path("many.svg");
    let out = client(&[
        &a,
        &b,
        "-n",
        "20",
        "-i",
        "0.005",
        "--json",
        "--plot",
        svg_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ev = json_lines(&out);
    let replies = |t: &str| {
        pings(&ev)
            .iter()
            .filter(|p| p["target"] == t && p["status"] == "reply")
            .count()
    };
    let svg = Svg::load(&svg_path);
    assert!(
        svg.has_text("TCP ping to 2 targets"),
        "{:?}",
        svg.all_text()
    );
    let mut rows: Vec<El> = svg
        .texts()
        .into_iter()
        .filter(|t| t.attrs.contains_key("font-weight") && (t.text == a || t.text == b))
        .collect();
    rows.sort_by(|x, y| x.num("y").total_cmp(&y.num("y")));
    let order: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    assert!(replies(&b) < 20, "seed 5 at 40 % loses some of 20");
    assert_eq!(order, [b.as_str(), a.as_str()], "worst first");
    for (i, r) in rows.iter().enumerate() {
        let y1 = rows.get(i + 1).map_or(f64::MAX, |n| n.num("y"));
        assert_eq!(
            svg.count_in("circle", ECHO, r.num("y"), y1),
            replies(&r.text),
            "replies of {}",
            r.text
        );
    }
    render(&svg_path);
}

/// The SVG's size, as written in its root element.
fn svg_size(p: &Path) -> (u32, u32) {
    let text = std::fs::read_to_string(p).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let r = doc.root_element();
    let n = |a: &str| r.attribute(a).unwrap().parse().unwrap();
    (n("width"), n("height"))
}

/// A PNG: its signature, and decoded, its size and the echo colour somewhere.
fn check_png(png: &Path, size: (u32, u32)) {
    let bytes = std::fs::read(png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let p = resvg::tiny_skia::Pixmap::decode_png(&bytes).expect("a PNG that decodes");
    assert_eq!((p.width(), p.height()), size);
    let echo = p
        .pixels()
        .iter()
        .filter(|c| (c.red(), c.green(), c.blue()) == (0x00, 0x72, 0xB2))
        .count();
    assert!(echo > 20, "{echo} pixels of the echo colour");
    // Text is drawn: many shades of grey (antialiased glyphs), not only flat colours.
    let greys: std::collections::HashSet<u8> = p
        .pixels()
        .iter()
        .filter(|c| c.red() == c.green() && c.green() == c.blue())
        .map(|c| c.red())
        .collect();
    assert!(greys.len() > 30, "{} shades of grey: no text?", greys.len());
}

#[test]
fn png_by_the_name_and_other_extensions_refused() {
    let d = Dir::new("png");
    let f = d.path("run.ndjson");
    let lines: Vec<String> = (1..=50)
        .map(|s| ping_line(s, &format!("{}.0", 1800000000 + s)))
        .collect();
    std::fs::write(&f, lines.join("\n")).unwrap();
    let (svg, png) = (d.path("run.svg"), d.path("run.png"));
    ok(&report(&[&f, Path::new("-o"), &svg]));
    let out = report(&[&f, Path::new("-o"), &png]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote "));
    check_png(&png, svg_size(&svg));
    // Case does not matter.
    let upper = d.path("RUN.PNG");
    ok(&report(&[&f, Path::new("-o"), &upper]));
    check_png(&upper, svg_size(&svg));
    // Any other extension: refused at once, nothing written.
    for name in ["run.jpg", "run.pdf", "run.svgz"] {
        let p = d.path(name);
        let out = report(&[&f, Path::new("-o"), &p]);
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(
            err.contains("cannot write .") && err.contains(".svg or .png"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!p.exists());
    }
    // --plot too.
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let live = d.path("live.png");
    let out = client(&[
        &srv.addr.to_string(),
        "-n",
        "20",
        "-i",
        "0",
        "--plot",
        live.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bytes = std::fs::read(&live).unwrap();
    let p = resvg::tiny_skia::Pixmap::decode_png(&bytes).unwrap();
    assert_eq!(p.width(), 1200);
}

#[test]
fn a_bad_destination_fails_at_start() {
    let d = Dir::new("baddest");
    let missing = d.path("no/such/dir/pic.svg");
    // report: before reading its input (standard input, held open, would never end).
    let out = run_within(&[os("report"), os("-o"), os(&missing)], None, 10);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("write the picture to {}", missing.display())),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // A directory.
    let out = run_within(&[os("report"), os("-o"), os(&d.0)], None, 10);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("directory"), "{}", stderr(&out));
    // --plot: before the first ping (else the run would take 20 s), one target or many.
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let (addr, closed) = (srv.addr.to_string(), closed_port().to_string());
    for targets in [vec![addr.as_str()], vec![addr.as_str(), closed.as_str()]] {
        for plot in [missing.as_path(), Path::new("x.gif")] {
            let mut args: Vec<&std::ffi::OsStr> = targets.iter().map(os).collect();
            args.extend([
                os("-n"),
                os("200"),
                os("-i"),
                os("0.1"),
                os("--plot"),
                os(plot),
            ]);
            let out = run_within(&args, Some(b""), 10);
            assert_eq!(out.status.code(), Some(2), "{targets:?} {plot:?}");
            assert!(out.stdout.is_empty(), "no ping made");
            assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        }
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn pictures_are_written_safely() {
    use std::os::unix::fs::FileTypeExt;
    let d = Dir::new("safe");
    let f = d.path("run.ndjson");
    let lines: Vec<String> = (1..=20)
        .map(|s| ping_line(s, &format!("{}.0", 1800000000 + s)))
        .collect();
    std::fs::write(&f, lines.join("\n")).unwrap();
    // A link planted at the old fixed temporary name is not followed.
    let victim = d.path("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, d.path("pic.svg.tmp")).unwrap();
    let pic = d.path("pic.svg");
    ok(&report(&[&f, Path::new("-o"), &pic]));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    Svg::load(&pic).elements();
    assert_eq!(
        files_in(&d.0),
        ["pic.svg", "pic.svg.tmp", "run.ndjson", "victim"],
        "no temporary file left"
    );
    // A FIFO is written into, not replaced.
    let fifo = d.path("fifo.svg");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    ok(&report(&[&f, Path::new("-o"), &fifo]));
    let got = reader.join().unwrap();
    assert!(got.starts_with("<svg") && got.trim_end().ends_with("</svg>"));
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // - and /dev/stdout: standard output (the "wrote" line goes to stderr for -).
    let out = report(&[&f, Path::new("-o"), Path::new("-")]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("<svg"));
    assert!(stderr(&out).contains("wrote -"));
    let out = report(&[&f, Path::new("-o"), Path::new("/dev/stdout")]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("<svg"));
    // /dev/null stays a character device.
    ok(&report(&[&f, Path::new("-o"), Path::new("/dev/null")]));
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_file_system_leaves_nothing_behind_and_a_device_node_is_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    if !need_root("mounting a tmpfs and making a device node") {
        return;
    }
    let d = Dir::new("full");
    let f = d.path("run.ndjson");
    // 2,000 probes drawn one by one: an SVG of a few hundred KB.
    let lines: Vec<String> = (1..=2000)
        .map(|s| ping_line(s, &format!("{}.0", 1800000000 + s)))
        .collect();
    std::fs::write(&f, lines.join("\n")).unwrap();
    let mnt = d.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount a tmpfs");
    let _guard = Tmpfs(mnt.clone());
    let pic = mnt.join("pic.svg");
    let out = report(&[&f, Path::new("-o"), &pic]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("write {}", pic.display())) && err.contains("space"),
        "{err}"
    );
    assert!(files_in(&mnt).is_empty(), "left: {:?}", files_in(&mnt));
    // A device node of our own (as /dev/null is): written into, still a device.
    let null = d.path("null");
    let st = Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(st.success(), "mknod");
    ok(&report(&[&f, Path::new("-o"), &null]));
    assert!(std::fs::metadata(&null)
        .unwrap()
        .file_type()
        .is_char_device());
    assert_eq!(files_in(&d.0), ["mnt", "null", "run.ndjson"]);
}

/// The run drops its capabilities before the first probe: root without CAP_DAC_OVERRIDE
/// cannot write into another user's directory, and the check at start says so (it used to
/// pass, and the picture was lost at the end).
#[test]
fn plot_is_checked_with_the_privileges_it_is_written_with() {
    if !need_root("root's capabilities dropped") {
        return;
    }
    let d = Dir::new("caps");
    let theirs = d.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let c = std::ffi::CString::new(theirs.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
    let pic = theirs.join("pic.svg");
    let srv = ServerProc::start(&["--loss", "0", "-q"]);
    let (addr, closed) = (srv.addr.to_string(), closed_port().to_string());
    for targets in [vec![addr.as_str()], vec![addr.as_str(), closed.as_str()]] {
        let mut args: Vec<&std::ffi::OsStr> = targets.iter().map(os).collect();
        args.extend([
            os("-n"),
            os("100"),
            os("-i"),
            os("0.1"),
            os("--plot"),
            os(&pic),
        ]);
        let out = run_within(&args, Some(b""), 8);
        assert_eq!(out.status.code(), Some(2), "{targets:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{targets:?}: no ping made");
        assert!(
            stderr(&out).contains("Permission denied") || stderr(&out).contains("permission"),
            "{}",
            stderr(&out)
        );
    }
    assert!(files_in(&theirs).is_empty());
}
