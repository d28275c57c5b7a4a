//! Render and key tests of the live views: drawn off screen with ratatui's test backend, with
//! assertions on the cells.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use ratatui::buffer::Buffer;
use ratatui::style::Color;

use super::board::{synthetic_board, Board, Probe, Sort};
use super::render_offscreen;
use super::trace::{Display, HopRow, RouterRow, TraceView, VerdictLine};
use super::{Action, Key, Palette, Tone};
use crate::cmd::trace::live::{hop_rows, verdict_line};
use crate::icmp::correlate::{IcmpReport, Phase, Source};
use crate::icmp::extension::{Extensions, MplsLabel};
use crate::trace::engine::{Answer, HopDone, Outcome};
use crate::trace::state::TraceState;
use crate::trace::verdict::verdict;

/// The buffer's lines as text.
fn lines(b: &Buffer) -> Vec<String> {
    let w = usize::from(b.area.width);
    b.content
        .chunks(w)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
        .collect()
}

fn screen(b: &Buffer) -> String {
    lines(b).join("\n")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn router(addr: &str, flows: &[u16], avg: f64) -> RouterRow {
    RouterRow {
        addr: Some(ip(addr)),
        count: flows.len() as u64,
        flows: flows.to_vec(),
        last: Some(avg),
        avg: Some(avg),
        best: Some(avg),
        worst: Some(avg),
        stddev: Some(0.0),
        ..RouterRow::default()
    }
}

fn hop(n: u8, sent: u64, received: u64, routers: Vec<RouterRow>) -> HopRow {
    let rtt = routers.first().and_then(|r| r.avg);
    HopRow {
        hop: n,
        sent,
        received,
        last: rtt,
        avg: rtt,
        best: rtt.map(|x| x - 0.5),
        worst: rtt.map(|x| x + 0.5),
        stddev: rtt.map(|_| 0.2),
        routers,
        ..HopRow::default()
    }
}

/// Three hops: a plain one, a load-balanced one with MPLS, a rate-limited one; reached.
fn sample_hops() -> Vec<HopRow> {
    let mut branch = router("10.0.2.2", &[2, 4], 5.5);
    branch.mpls = vec!["24001/16008".to_string()];
    let mut third = hop(3, 10, 6, vec![router("10.0.3.1", &[1], 9.0)]);
    third.rate_limited = true;
    vec![
        hop(1, 10, 10, vec![router("10.0.1.1", &[1, 2, 3, 4], 1.0)]),
        hop(2, 10, 10, vec![router("10.0.2.1", &[1, 3], 4.0), branch]),
        third,
        hop(4, 10, 10, vec![router("192.0.2.7", &[1], 12.0)]),
    ]
}

fn reached() -> VerdictLine {
    VerdictLine {
        text: "reached 192.0.2.7:443 (open) at hop 4".to_string(),
        tone: Tone::Good,
    }
}

fn trace_view(palette: Palette) -> TraceView {
    let mut v = TraceView::new("trace 192.0.2.7:443", palette);
    v.update(10, sample_hops(), reached());
    v
}

#[test]
fn trace_rows_branches_mpls_rate_limit_and_verdict_at_80x24() {
    let mut v = trace_view(Palette::new(true));
    let b = render_offscreen(80, 24, |f| v.render(f));
    let text = lines(&b);
    assert!(
        text[0].contains("trace 192.0.2.7:443  cycles 10"),
        "{}",
        text[0]
    );
    assert!(text[1].contains("Hop") && text[1].contains("Loss%") && text[1].contains("StDev"));
    let row1 = &text[2];
    assert!(row1.contains("  1 10.0.1.1"), "{row1}");
    assert!(
        row1.contains("0.0%") && row1.contains("10") && row1.contains("1.0"),
        "{row1}"
    );
    // The load-balanced hop: the main router with its flows, then the branch sub-row, then
    // the branch's MPLS labels.
    assert!(text[3].contains("2 10.0.2.1 flows 1,3"), "{}", text[3]);
    assert!(text[4].contains("└ 10.0.2.2 flows 2,4"), "{}", text[4]);
    assert!(text[4].contains("5.5"), "{}", text[4]);
    assert!(text[5].contains("MPLS 24001/16008"), "{}", text[5]);
    assert!(text[6].contains("3 10.0.3.1 (rate-limited)"), "{}", text[6]);
    assert!(text[6].contains("40.0%"), "{}", text[6]);
    assert!(
        text[22].contains("reached 192.0.2.7:443 (open) at hop 4"),
        "{}",
        text[22]
    );
    assert!(text[23].contains("q quit"), "{}", text[23]);
    // Colour: the verdict is green, the rate-limited loss magenta (not red).
    let verdict_cell = &b[(0, 22)];
    assert_eq!(verdict_cell.fg, Color::Green);
    let loss_x = text[6].find("40.0%").unwrap() as u16;
    assert_eq!(b[(loss_x, 6)].fg, Color::Magenta);
}

#[test]
fn the_trace_view_adapts_to_a_resize() {
    let mut v = trace_view(Palette::new(true));
    let small = render_offscreen(80, 24, |f| v.render(f));
    let big = render_offscreen(160, 50, |f| v.render(f));
    let (small, big) = (lines(&small), lines(&big));
    assert_eq!(big.len(), 50);
    assert!(big[49].contains("q quit"));
    assert!(big[48].contains("reached 192.0.2.7:443"), "{}", big[48]);
    // Wider: the host column grows, the numbers keep their width.
    let at = |rows: &[String], s: &str| rows[1].find(s).unwrap();
    assert!(at(&big, "Loss%") > at(&small, "Loss%"));
    assert!(big[2].contains("10.0.1.1"));
    // Too small to hold everything: no panic, the verdict still at the bottom.
    let tiny = render_offscreen(40, 8, |f| v.render(f));
    assert!(lines(&tiny)[6].contains("reached"));
}

#[test]
fn no_color_draws_no_colour_at_all() {
    let mut v = trace_view(Palette::new(false));
    let b = render_offscreen(80, 24, |f| v.render(f));
    assert!(b
        .content
        .iter()
        .all(|c| c.fg == Color::Reset && c.bg == Color::Reset));
    let mut board = synthetic_board(50, Palette::new(false));
    let b = render_offscreen(80, 24, |f| board.render(f));
    assert!(b
        .content
        .iter()
        .all(|c| c.fg == Color::Reset && c.bg == Color::Reset));
    // With colour, the same board has some.
    let mut board = synthetic_board(50, Palette::new(true));
    let b = render_offscreen(80, 24, |f| board.render(f));
    assert!(b.content.iter().any(|c| c.fg == Color::Red));
}

#[test]
fn trace_keys_quit_pause_reset_display_names_and_scroll() {
    let mut v = trace_view(Palette::new(true));
    assert_eq!(v.handle(Key::Char('q')), Action::Quit);
    assert_eq!(v.handle(Key::Ctrl('c')), Action::Quit);
    assert_eq!(v.handle(Key::Char('x')), Action::None);

    // Pause freezes the display: updates are ignored until resumed.
    assert_eq!(v.handle(Key::Char('p')), Action::Pause);
    assert!(v.paused());
    assert!(!v.update(11, vec![], reached()));
    assert_eq!(v.hops().len(), 4);
    let b = render_offscreen(80, 24, |f| v.render(f));
    assert!(lines(&b)[0].contains("[paused]"));
    assert_eq!(v.handle(Key::Char('p')), Action::Resume);
    assert!(v.update(11, sample_hops(), reached()));

    // Names: shown when supplied, `n` toggles back to addresses.
    let mut hops = sample_hops();
    hops[0].routers[0].name = Some("gw.example".to_string());
    v.update(12, hops, reached());
    let row = |v: &mut TraceView| lines(&render_offscreen(80, 24, |f| v.render(f)))[2].clone();
    assert!(v.names() && row(&mut v).contains("gw.example"));
    assert_eq!(v.handle(Key::Char('n')), Action::Redraw);
    assert!(!v.names() && row(&mut v).contains("10.0.1.1"));

    // Selection moves with the arrows, bounded.
    assert_eq!(v.handle(Key::Up), Action::None);
    assert_eq!(v.handle(Key::Down), Action::Redraw);
    assert_eq!(v.selected(), 1);
    assert_eq!(v.handle(Key::End), Action::Redraw);
    assert_eq!(v.selected(), 3);
    assert_eq!(v.handle(Key::Down), Action::None);

    // `d` switches to the RTT chart of the selected hop and back.
    assert_eq!(v.handle(Key::Char('d')), Action::Redraw);
    assert_eq!(v.display(), Display::Chart);
    let b = render_offscreen(80, 24, |f| v.render(f));
    assert!(
        screen(&b).contains("RTT of hop 4 192.0.2.7"),
        "{}",
        screen(&b)
    );
    assert!(lines(&b)[22].contains("reached"));
    assert_eq!(v.handle(Key::Char('d')), Action::Redraw);
    assert_eq!(v.display(), Display::Table);

    // Reset clears the view's history; the caller resets its statistics.
    assert_eq!(v.handle(Key::Char('r')), Action::Reset);
    assert!(v.hops().is_empty() && v.recent(1).is_none());
}

#[test]
fn sparklines_follow_updates_with_a_mark_per_lost_probe() {
    let mut v = TraceView::new("t", Palette::new(true));
    let step = |v: &mut TraceView, sent, received, last| {
        let mut h = hop(1, sent, received, vec![router("10.0.1.1", &[1], last)]);
        h.last = Some(last);
        v.update(sent, vec![h], reached());
    };
    step(&mut v, 1, 1, 1.0);
    step(&mut v, 2, 2, 9.0);
    step(&mut v, 4, 2, 9.0); // two probes lost
    step(&mut v, 5, 3, 5.0);
    let ring: Vec<_> = v.recent(1).unwrap().iter().collect();
    assert_eq!(ring, [Some(1.0), Some(9.0), None, None, Some(5.0)]);
    let b = render_offscreen(80, 24, |f| v.render(f));
    assert!(lines(&b)[2].contains("▁█××▅"), "{}", lines(&b)[2]);
    // A reset of the statistics upstream (counts went down) starts the ring afresh.
    step(&mut v, 1, 1, 2.0);
    assert_eq!(v.recent(1).unwrap().len(), 1);
}

#[test]
fn scrolling_keeps_the_selected_hop_on_screen() {
    let mut v = TraceView::new("t", Palette::new(true));
    let hops: Vec<HopRow> = (1..=30)
        .map(|n| hop(n, 3, 3, vec![router(&format!("10.0.{n}.1"), &[1], 1.0)]))
        .collect();
    v.update(3, hops, reached());
    let b = render_offscreen(80, 24, |f| v.render(f));
    assert!(screen(&b).contains("10.0.1.1 "));
    assert!(!screen(&b).contains("10.0.30.1"));
    v.handle(Key::End);
    let b = render_offscreen(80, 24, |f| v.render(f));
    let text = lines(&b);
    assert!(!screen(&b).contains("10.0.1.1 "));
    assert!(text[21].contains("30 10.0.30.1"), "{}", text[21]);
    v.handle(Key::Home);
    let b = render_offscreen(80, 24, |f| v.render(f));
    assert!(lines(&b)[2].contains("  1 10.0.1.1"));
}

fn report(from: IpAddr, mpls: Option<u32>) -> IcmpReport {
    IcmpReport {
        icmp_type: 11,
        code: 0,
        v6: false,
        info: 0,
        from,
        after: Duration::from_millis(3),
        phase: Phase::Connect,
        source: Source::Raw,
        extensions: mpls.map(|label| {
            Box::new(Extensions {
                mpls: vec![MplsLabel {
                    label,
                    tc: 0,
                    bottom: true,
                    ttl: 1,
                }],
                interfaces: vec![],
                other: vec![],
                legacy: false,
                truncated: false,
            })
        }),
    }
}

fn outcome(hop: u8, flow: u16, answer: Answer, from: Option<IpAddr>, ms: u64) -> Outcome {
    Outcome {
        cycle: 0,
        hop,
        flow,
        query: 0,
        seq: u64::from(hop) * 100 + u64::from(flow),
        reprobe: false,
        rtt: from.map(|_| Duration::from_millis(ms)),
        answer,
        from,
        sent_at: SystemTime::UNIX_EPOCH,
        local_port: None,
        tcp_seq: None,
        seen: None,
    }
}

#[test]
fn trace_state_feeds_the_view() {
    let target: SocketAddr = "192.0.2.7:443".parse().unwrap();
    let mut state = TraceState::new(target, 30, 1, 2);
    let (r1, r2a, r2b) = (ip("10.0.1.1"), ip("10.0.2.1"), ip("10.0.2.2"));
    let te = |hop, flow, from, mpls| {
        outcome(
            hop,
            flow,
            Answer::TimeExceeded(report(from, mpls)),
            Some(from),
            2,
        )
    };
    let done = |hop, outcomes| HopDone {
        cycle: 0,
        hop,
        outcomes,
    };
    state.record(&done(1, vec![te(1, 0, r1, None), te(1, 1, r1, None)]));
    state.record(&done(
        2,
        vec![te(2, 0, r2a, None), te(2, 1, r2b, Some(24001))],
    ));
    let reach = |flow| {
        outcome(
            3,
            flow,
            Answer::Reached { open: true },
            Some(target.ip()),
            5,
        )
    };
    state.record(&done(3, vec![reach(0), reach(1)]));
    let rows = hop_rows(&state, |a| (a == r1).then(|| "gw.example".to_string()));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].routers[0].name.as_deref(), Some("gw.example"));
    assert_eq!(rows[1].routers.len(), 2);
    assert_eq!(rows[1].routers[1].mpls, ["24001"]);
    assert_eq!(rows[2].routers[0].note.as_deref(), Some("[open]"));
    assert_eq!(rows[2].avg, Some(5.0));
    let line = verdict_line(&verdict(&state, "1s"));
    assert_eq!(line.tone, Tone::Good);
    let mut v = TraceView::new("trace", Palette::new(true));
    v.update(1, rows, line.clone());
    let b = render_offscreen(80, 24, |f| v.render(f));
    let text = screen(&b);
    assert!(text.contains("gw.example"), "{text}");
    assert!(text.contains("└ 10.0.2.2 flows 1"), "{text}");
    assert!(text.contains("192.0.2.7 [open]"), "{text}");
    assert!(text.contains(&line.text[..20]), "{text}");
}

fn small_board() -> Board {
    let mut b = Board::new(10, Palette::new(true));
    let good = b.add("good.example:443", vec!["env=prod".to_string()]);
    let lossy = b.add("lossy.example:443", vec!["env=prod".to_string()]);
    let down = b.add("down.example:443", vec!["env=lab".to_string()]);
    let refused = b.add("refused.example:22", vec!["env=lab".to_string()]);
    for k in 0..4 {
        b.record(good, Probe::Reply(1.0 + f64::from(k)));
        b.record(
            lossy,
            if k == 1 {
                Probe::Lost
            } else {
                Probe::Reply(30.0)
            },
        );
        b.record(refused, Probe::Refused);
    }
    b.record(
        down,
        Probe::Icmp {
            reason: "host unreachable".to_string(),
            router: ip("10.9.9.9"),
        },
    );
    b
}

fn names(b: &mut Board) -> Vec<String> {
    let order = b.order().to_vec();
    order.iter().map(|&i| b.targets()[i].name.clone()).collect()
}

#[test]
fn the_board_is_sorted_worst_first_and_the_sort_key_changes_it() {
    let mut b = small_board();
    assert_eq!(
        names(&mut b),
        [
            "down.example:443",
            "refused.example:22",
            "lossy.example:443",
            "good.example:443"
        ]
    );
    let lossy = &b.targets()[1];
    assert_eq!(lossy.loss_pct(), 25.0);
    assert_eq!((lossy.median(), lossy.p99()), (Some(30.0), Some(30.0)));
    let good = &b.targets()[0];
    assert_eq!((good.median(), good.p99()), (Some(2.0), Some(4.0)));
    let d = render_offscreen(80, 24, |f| b.render(f));
    let text = lines(&d);
    assert!(
        text[0].contains("4 targets, 4 shown, sorted worst first"),
        "{}",
        text[0]
    );
    assert!(text[2].contains("down.example:443"), "{}", text[2]);
    assert!(text[2].contains("host unreachable"), "{}", text[2]);
    let wide = render_offscreen(140, 24, |f| b.render(f));
    assert!(lines(&wide)[2].contains("host unreachable from 10.9.9.9"));
    assert!(text[4].contains("lossy.example:443") && text[4].contains("25.0%"));
    assert!(text[5].contains("reply 4.0 ms"), "{}", text[5]);
    let reply_x = text[5].find("reply").unwrap() as u16;
    assert_eq!(d[(reply_x, 5)].fg, Color::Green);
    let down_x = text[2].find("host unreachable").unwrap() as u16;
    assert_eq!(d[(down_x, 2)].fg, Color::Red);

    assert_eq!(b.handle(Key::Char('s')), Action::Redraw);
    assert_eq!(b.sort(), Sort::Name);
    assert_eq!(names(&mut b)[0], "down.example:443");
    assert_eq!(names(&mut b)[3], "refused.example:22");
    b.handle(Key::Char('s'));
    assert_eq!(b.sort(), Sort::Rtt);
    assert_eq!(names(&mut b)[0], "lossy.example:443");
    b.handle(Key::Char('s'));
    assert_eq!(names(&mut b)[0], "good.example:443");
    b.handle(Key::Char('s'));
    assert_eq!(b.sort(), Sort::Worst);
}

#[test]
fn the_board_filters_by_name_or_label() {
    let mut b = small_board();
    assert_eq!(b.handle(Key::Char('/')), Action::Redraw);
    assert!(b.editing());
    for c in "ENV=LAB".chars() {
        b.handle(Key::Char(c));
    }
    // While typing, `q` is text, not quit; Ctrl-C still quits.
    assert_eq!(names(&mut b), ["down.example:443", "refused.example:22"]);
    let d = render_offscreen(80, 24, |f| b.render(f));
    assert!(lines(&d)[0].contains("2 shown") && lines(&d)[0].contains("/ENV=LAB"));
    assert_eq!(b.handle(Key::Enter), Action::Redraw);
    assert!(!b.editing());
    assert_eq!(b.filter(), "ENV=LAB");
    b.handle(Key::Char('/'));
    (0..7).for_each(|_| {
        b.handle(Key::Backspace);
    });
    for c in "lossy".chars() {
        b.handle(Key::Char(c));
    }
    assert_eq!(names(&mut b), ["lossy.example:443"]);
    b.handle(Key::Char('q'));
    assert_eq!(b.filter(), "lossyq");
    assert!(names(&mut b).is_empty());
    assert_eq!(b.handle(Key::Ctrl('c')), Action::Quit);
    assert_eq!(b.handle(Key::Esc), Action::Redraw);
    assert_eq!(b.filter(), "");
    assert_eq!(names(&mut b).len(), 4);
    assert_eq!(b.handle(Key::Char('q')), Action::Quit);
}

#[test]
fn a_removed_target_leaves_the_board_and_its_id_is_reused() {
    let mut b = small_board();
    let lossy = b
        .targets()
        .iter()
        .position(|t| t.name == "lossy.example:443")
        .unwrap();
    b.remove(lossy);
    b.remove(lossy);
    assert_eq!(names(&mut b).len(), 3);
    assert!(!names(&mut b).contains(&"lossy.example:443".to_string()));
    let d = render_offscreen(80, 24, |f| b.render(f));
    assert!(
        lines(&d)[0].starts_with("3 targets, 3 shown"),
        "{}",
        lines(&d)[0]
    );
    let id = b.add("new.example:443", vec![]);
    assert_eq!(id, lossy);
    assert_eq!(b.targets()[id].last, Probe::Pending);
    assert_eq!(b.targets()[id].probes, 0);
    assert_eq!(names(&mut b).len(), 4);
}

#[test]
fn the_board_scrolls_through_ten_thousand_targets_drawing_only_what_shows() {
    let mut b = synthetic_board(10_000, Palette::new(true));
    let d = render_offscreen(80, 24, |f| b.render(f));
    let text = lines(&d);
    assert!(
        text[0].contains("10000 targets, 10000 shown"),
        "{}",
        text[0]
    );
    // Worst first: the timeouts and ICMP errors of the last probe come before the replies.
    assert!(text[2].contains("host unreachable"), "{}", text[2]);
    assert_eq!(b.offset(), 0);
    assert_eq!(b.handle(Key::PageDown), Action::Redraw);
    assert_eq!(b.offset(), 21, "a page is the rows that showed");
    let first_of_page = names(&mut b)[21].clone();
    let d = render_offscreen(80, 24, |f| b.render(f));
    assert!(lines(&d)[2].contains(&first_of_page));
    assert_eq!(b.handle(Key::End), Action::Redraw);
    assert_eq!(b.offset(), 10_000 - 21, "the last page");
    let last = names(&mut b)[9_999].clone();
    let d = render_offscreen(80, 24, |f| b.render(f));
    assert!(lines(&d)[22].contains(&last));
    // Taller: the last page holds more rows, the offset follows.
    render_offscreen(80, 44, |f| b.render(f));
    assert_eq!(b.offset(), 10_000 - 41);
    assert_eq!(b.handle(Key::Down), Action::None);
    assert_eq!(b.handle(Key::Home), Action::Redraw);
    assert_eq!(b.handle(Key::Up), Action::None);
    // Reset keeps the targets and forgets their figures.
    assert_eq!(b.handle(Key::Char('r')), Action::Reset);
    assert!(b
        .targets()
        .iter()
        .all(|t| t.probes == 0 && t.median().is_none()));
}

#[test]
fn the_board_window_is_bounded() {
    let mut b = Board::new(usize::MAX, Palette::new(true));
    let id = b.add("x", vec![]);
    for _ in 0..2_000 {
        b.record(id, Probe::Timeout);
    }
    b.record(id, Probe::Reply(1.0));
    b.record(usize::MAX, Probe::Reply(1.0)); // unknown: ignored
    let t = &b.targets()[0];
    assert_eq!(t.probes, 2_001);
    assert!((t.loss_pct() - 100.0 * 1023.0 / 1024.0).abs() < 1e-9);
    let d = render_offscreen(100, 30, |f| b.render(f));
    assert!(lines(&d)[2].contains("reply 1.0 ms"));
}

#[test]
fn a_thirty_hop_trace_draws_at_80x24_with_bounded_history() {
    let mut v = super::trace::synthetic_trace(30, 200, Palette::new(true));
    assert!(v.recent(30).unwrap().len() <= super::spark::RECENT);
    let b = render_offscreen(80, 24, |f| v.render(f));
    let text = lines(&b);
    assert!(text[0].contains("cycles 200"));
    assert!(text[22].contains("reached 192.0.2.7:443 (open) at hop 30"));
    assert!(
        screen(&b).contains("└ 10.0.5.2 flows 2,4"),
        "{}",
        screen(&b)
    );
    assert!(screen(&b).contains("10.0.7.1 (rate-limited)"));
}

#[test]
fn new_figures_reorder_the_board_at_most_once_a_second() {
    let mut b = small_board();
    let first_row = |b: &mut Board| lines(&render_offscreen(80, 24, |f| b.render(f)))[2].clone();
    assert!(first_row(&mut b).contains("down.example"));
    // The target that was worst recovers: the rows stay put until the next reorder...
    for _ in 0..10 {
        b.record(2, Probe::Reply(1.0));
    }
    let row = first_row(&mut b);
    assert!(
        row.contains("down.example") && row.contains("reply 1.0 ms"),
        "{row}"
    );
    // ...which `order` does at once.
    assert_eq!(names(&mut b)[3], "down.example:443");
    assert!(first_row(&mut b).contains("refused.example"));
}

#[test]
fn a_reply_below_a_millisecond_shows_its_microseconds() {
    let mut b = Board::new(10, Palette::new(true));
    let lo = b.add("127.0.0.1:18777", Vec::new());
    b.record(lo, Probe::Reply(0.039));
    let text = screen(&render_offscreen(80, 24, |f| b.render(f)));
    assert!(text.contains("reply 0.039 ms"), "{text}");
    assert!(text.contains("0.04"), "the median to two decimals: {text}");
}
