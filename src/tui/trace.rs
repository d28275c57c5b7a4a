//! The live trace view, as mtr and trippy draw it: one row per hop (loss %, sent, last, avg,
//! best, worst, stddev, a sparkline of recent RTTs), load-balanced branches and MPLS labels as
//! sub-rows, a mark on rate-limited hops, the verdict at the bottom; `d` switches to an RTT
//! chart of the selected hop. It draws from its own view model ([`HopRow`], [`RouterRow`]),
//! filled from trace's state by `cmd::trace::live`; keys go through [`TraceView::handle`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Cell, Chart, Dataset, GraphType, Paragraph, Row, Table};
use ratatui::Frame;

use super::columns::{layout, millis, Column};
use super::keys::{Action, Key};
use super::spark::{RttRing, RECENT};
use super::theme::{Palette, Tone};

/// One address that answered at a hop.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouterRow {
    pub addr: Option<IpAddr>,
    /// Its reverse-DNS name, when the caller looked one up.
    pub name: Option<String>,
    /// Answers from it.
    pub count: u64,
    /// The flows it answered (shown when the hop has branches).
    pub flows: Vec<u16>,
    /// Its MPLS label stacks, each as text.
    pub mpls: Vec<String>,
    /// What else it said: the target's answer, an ICMP error.
    pub note: Option<String>,
    /// Milliseconds.
    pub last: Option<f64>,
    pub avg: Option<f64>,
    pub best: Option<f64>,
    pub worst: Option<f64>,
    pub stddev: Option<f64>,
}

/// One hop over every cycle.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HopRow {
    pub hop: u8,
    pub sent: u64,
    pub received: u64,
    /// Milliseconds.
    pub last: Option<f64>,
    pub avg: Option<f64>,
    pub best: Option<f64>,
    pub worst: Option<f64>,
    pub stddev: Option<f64>,
    /// The routers, the most frequent first; more than one: load-balanced branches.
    pub routers: Vec<RouterRow>,
    pub rate_limited: bool,
    /// A probe that could not be sent.
    pub error: Option<String>,
}

impl HopRow {
    pub fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        100.0 * self.sent.saturating_sub(self.received) as f64 / self.sent as f64
    }
}

/// The verdict line: its words and its tone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictLine {
    pub text: String,
    pub tone: Tone,
}

/// Which display the view shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    Table,
    /// The RTT chart of the selected hop.
    Chart,
}

/// The state of the live trace view.
#[derive(Clone, Debug)]
pub struct TraceView {
    title: String,
    cycles: u64,
    hops: Vec<HopRow>,
    recent: BTreeMap<u8, RttRing>,
    /// (sent, received) per hop at the last update, to know what each update added.
    seen: BTreeMap<u8, (u64, u64)>,
    verdict: Option<VerdictLine>,
    display: Display,
    names: bool,
    paused: bool,
    selected: usize,
    offset: usize,
    palette: Palette,
}

/// Terminals at least this wide get wider number and sparkline columns.
const WIDE: u16 = 100;

/// Widths of a number column and of the sparkline at a terminal's width.
fn widths_at(width: u16) -> (u16, u16) {
    if width >= WIDE {
        (6, 20)
    } else {
        (5, 8)
    }
}

impl TraceView {
    pub fn new(title: impl Into<String>, palette: Palette) -> TraceView {
        TraceView {
            title: title.into(),
            cycles: 0,
            hops: Vec::new(),
            recent: BTreeMap::new(),
            seen: BTreeMap::new(),
            verdict: None,
            display: Display::Table,
            names: true,
            paused: false,
            selected: 0,
            offset: 0,
            palette,
        }
    }

    /// Take the state after a cycle (ignored while paused: the display stays frozen). The
    /// sparklines get each hop's last RTT when it got new answers, and a loss mark per probe
    /// that went unanswered since the previous update. Returns whether the view changed.
    pub fn update(&mut self, cycles: u64, hops: Vec<HopRow>, verdict: VerdictLine) -> bool {
        if self.paused {
            return false;
        }
        for h in &hops {
            let ring = self.recent.entry(h.hop).or_default();
            let (sent, received) = self.seen.get(&h.hop).copied().unwrap_or((0, 0));
            if h.sent < sent || h.received < received {
                ring.clear(); // the statistics were reset
            }
            let (sent, received) = if h.sent < sent {
                (0, 0)
            } else {
                (sent, received)
            };
            if h.received > received {
                ring.push(h.last);
            }
            let lost = (h.sent - sent).saturating_sub(h.received.saturating_sub(received));
            for _ in 0..lost.min(RECENT as u64) {
                ring.push(None);
            }
            self.seen.insert(h.hop, (h.sent, h.received));
        }
        self.cycles = cycles;
        self.hops = hops;
        self.verdict = Some(verdict);
        self.selected = self.selected.min(self.hops.len().saturating_sub(1));
        true
    }

    pub fn hops(&self) -> &[HopRow] {
        &self.hops
    }

    /// Recent RTTs of a hop (None: lost), oldest first.
    pub fn recent(&self, hop: u8) -> Option<&RttRing> {
        self.recent.get(&hop)
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    pub fn display(&self) -> Display {
        self.display
    }

    /// Whether names (reverse DNS) are shown where the caller supplied them.
    pub fn names(&self) -> bool {
        self.names
    }

    /// The index of the selected hop row.
    pub fn selected(&self) -> usize {
        self.selected
    }

    /// `q`/Ctrl-C quit, `p` pause, `r` reset, `d` display, `n` names, arrows scroll.
    pub fn handle(&mut self, key: Key) -> Action {
        let last = self.hops.len().saturating_sub(1);
        let select = |view: &mut TraceView, to: usize| {
            let to = to.min(last);
            if to == view.selected {
                return Action::None;
            }
            view.selected = to;
            Action::Redraw
        };
        match key {
            Key::Char('q') | Key::Ctrl('c') => Action::Quit,
            Key::Char('p') => {
                self.paused = !self.paused;
                if self.paused {
                    Action::Pause
                } else {
                    Action::Resume
                }
            }
            Key::Char('r') => {
                self.recent.clear();
                self.seen.clear();
                self.hops.clear();
                self.cycles = 0;
                self.selected = 0;
                self.offset = 0;
                Action::Reset
            }
            Key::Char('d') => {
                self.display = match self.display {
                    Display::Table => Display::Chart,
                    Display::Chart => Display::Table,
                };
                Action::Redraw
            }
            Key::Char('n') => {
                self.names = !self.names;
                Action::Redraw
            }
            Key::Up | Key::Char('k') => select(self, self.selected.saturating_sub(1)),
            Key::Down | Key::Char('j') => select(self, self.selected + 1),
            Key::PageUp => select(self, self.selected.saturating_sub(10)),
            Key::PageDown => select(self, self.selected + 10),
            Key::Home => select(self, 0),
            Key::End => select(self, last),
            _ => Action::None,
        }
    }

    /// Draw the whole view on the frame.
    pub fn render(&mut self, frame: &mut Frame) {
        let [title, body, verdict, help] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        let state = if self.paused { "  [paused]" } else { "" };
        let head = format!("{}  cycles {}{state}", self.title, self.cycles);
        frame.render_widget(Paragraph::new(head).style(self.palette.header()), title);
        match self.display {
            Display::Table => self.render_table(frame, body),
            Display::Chart => self.render_chart(frame, body),
        }
        if let Some(v) = &self.verdict {
            let line = Line::from(Span::styled(v.text.as_str(), self.palette.tone(v.tone)));
            frame.render_widget(Paragraph::new(line), verdict);
        }
        let keys = "q quit  p pause  r reset  d display  n names  ↑↓ select";
        frame.render_widget(
            Paragraph::new(keys).style(self.palette.tone(Tone::Dim)),
            help,
        );
    }

    fn host(&self, r: &RouterRow) -> String {
        let addr = r.addr.map_or_else(|| "???".to_string(), |a| a.to_string());
        match (&r.name, self.names) {
            (Some(n), true) => n.clone(),
            _ => addr,
        }
    }

    /// The rows of the table: each hop's main row, then its sub-rows; with, per row, the
    /// index of its hop.
    fn lines(&self, width: u16) -> Vec<(usize, Row<'_>)> {
        let p = self.palette;
        let (num, spark) = widths_at(width);
        let ms = |v| ms(v, num);
        let mut rows = Vec::new();
        for (i, h) in self.hops.iter().enumerate() {
            let branched = h.routers.len() > 1;
            let mut host = match (h.routers.first(), &h.error) {
                (Some(r), _) => self.host(r),
                (None, Some(e)) => format!("(error: {e})"),
                (None, None) => "???".to_string(),
            };
            if let Some(note) = h.routers.first().and_then(|r| r.note.as_ref()) {
                host = format!("{host} {note}");
            }
            let mut spans = vec![Span::raw(host)];
            if branched {
                spans.push(Span::styled(
                    flows_text(&h.routers[0].flows),
                    p.tone(Tone::Dim),
                ));
            }
            if h.rate_limited {
                spans.push(Span::styled(" (rate-limited)", p.tone(Tone::Warn)));
            }
            let loss = h.loss_pct();
            let loss_tone = if h.sent == h.received {
                Tone::Plain
            } else if h.received == 0 && !h.rate_limited {
                Tone::Bad
            } else {
                Tone::Warn
            };
            let spark = self
                .recent
                .get(&h.hop)
                .map(|r| r.sparkline(usize::from(spark)))
                .unwrap_or_default();
            let row = Row::new(vec![
                Cell::from(format!("{:>3}", h.hop)),
                Cell::from(Line::from(spans)),
                Cell::from(Span::styled(format!("{loss:>5.1}%"), p.tone(loss_tone))),
                Cell::from(format!("{:>4}", h.sent)),
                ms(h.last),
                ms(h.avg),
                ms(h.best),
                ms(h.worst),
                ms(h.stddev),
                Cell::from(spark),
            ]);
            rows.push((i, row));
            for (k, r) in h.routers.iter().enumerate() {
                if k > 0 {
                    let mut text = format!(" └ {}", self.host(r));
                    if let Some(note) = &r.note {
                        text = format!("{text} {note}");
                    }
                    let cells = vec![
                        Cell::from(""),
                        Cell::from(Line::from(vec![
                            Span::raw(text),
                            Span::styled(flows_text(&r.flows), p.tone(Tone::Dim)),
                        ])),
                        Cell::from(""),
                        Cell::from(format!("{:>4}", r.count)),
                        ms(r.last),
                        ms(r.avg),
                        ms(r.best),
                        ms(r.worst),
                        ms(r.stddev),
                    ];
                    rows.push((i, Row::new(cells)));
                }
                for m in &r.mpls {
                    let text = format!("   MPLS {m}");
                    let row = Row::new(vec![Cell::from(""), Cell::from(text)]);
                    rows.push((i, row.style(p.tone(Tone::Dim))));
                }
            }
        }
        rows
    }

    fn render_table(&mut self, frame: &mut Frame, area: Rect) {
        let rows = self.lines(area.width);
        let (num, spark) = widths_at(area.width);
        let height = usize::from(area.height.saturating_sub(1)).max(1);
        // Keep the selected hop's main row on screen.
        let first = rows
            .iter()
            .position(|(i, _)| *i == self.selected)
            .unwrap_or(0);
        let end = rows
            .iter()
            .rposition(|(i, _)| *i == self.selected)
            .unwrap_or(0)
            + 1;
        let mut offset = self.offset.min(rows.len().saturating_sub(height));
        if first < offset {
            offset = first;
        } else if end > offset + height {
            offset = end.saturating_sub(height).min(first);
        }
        let selected = self.selected;
        let p = self.palette;
        let visible: Vec<Row> = rows
            .into_iter()
            .enumerate()
            .skip(offset)
            .take(height)
            .map(|(n, (i, row))| {
                if n == first && i == selected {
                    row.style(p.selected())
                } else {
                    row
                }
            })
            .collect();
        let (header, widths) = layout(
            &[
                Column::text("Hop", Constraint::Length(3)),
                Column::text("Host", Constraint::Min(12)),
                Column::number("Loss%", 6),
                Column::number("Snt", 4),
                Column::number("Last", num),
                Column::number("Avg", num),
                Column::number("Best", num),
                Column::number("Wrst", num),
                Column::number("StDev", num),
                Column::text("Recent", Constraint::Length(spark)),
            ],
            p,
        );
        frame.render_widget(Table::new(visible, widths).header(header), area);
        self.offset = offset;
    }

    fn render_chart(&self, frame: &mut Frame, area: Rect) {
        let Some(h) = self.hops.get(self.selected) else {
            frame.render_widget(Paragraph::new("no hop yet"), area);
            return;
        };
        let ring = self.recent.get(&h.hop);
        let points: Vec<(f64, f64)> = ring
            .into_iter()
            .flat_map(|r| r.iter().enumerate())
            .filter_map(|(x, s)| s.map(|ms| (x as f64, ms)))
            .collect();
        let top = points.iter().map(|p| p.1).fold(1.0_f64, f64::max) * 1.1;
        let width = ring.map_or(RECENT, RttRing::capacity) as f64;
        let host = h
            .routers
            .first()
            .map_or_else(|| "???".to_string(), |r| self.host(r));
        let name = format!("hop {} {host}", h.hop);
        let dataset = Dataset::default()
            .name(name.clone())
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(self.palette.tone(Tone::Good))
            .data(&points);
        let chart = Chart::new(vec![dataset])
            .x_axis(Axis::default().title("probes").bounds([0.0, width]))
            .y_axis(
                Axis::default()
                    .title("ms")
                    .bounds([0.0, top])
                    .labels([Line::from("0"), Line::from(format!("{top:.1}"))]),
            );
        let [label, plot] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
        frame.render_widget(Paragraph::new(format!("RTT of {name}  (↑↓ hop)")), label);
        frame.render_widget(chart, plot);
    }
}

/// Milliseconds in a number column `width` wide.
fn ms(v: Option<f64>, width: u16) -> Cell<'static> {
    Cell::from(millis(v, width))
}

/// ` flows 1,3,5` (at most six shown).
fn flows_text(flows: &[u16]) -> String {
    if flows.is_empty() {
        return String::new();
    }
    let mut shown: Vec<String> = flows.iter().take(6).map(u16::to_string).collect();
    if flows.len() > 6 {
        shown.push("…".to_string());
    }
    format!(" flows {}", shown.join(","))
}

/// A trace view of `hops` synthetic hops after `cycles` cycles (every fifth hop load-balanced
/// over two routers, every seventh rate-limiting): for benchmarks of [`TraceView::render`]
/// and [`TraceView::update`].
pub fn synthetic_trace(hops: u8, cycles: u64, palette: Palette) -> TraceView {
    let mut view = TraceView::new("trace 192.0.2.7:443", palette);
    for c in 1..=cycles {
        let rows = (1..=hops)
            .map(|n| {
                let rtt = f64::from(n) + (c % 7) as f64 / 10.0;
                let router = |last: u8, flows: Vec<u16>| RouterRow {
                    addr: Some(IpAddr::from([10, 0, n, last])),
                    count: c,
                    flows,
                    last: Some(rtt),
                    avg: Some(rtt),
                    ..RouterRow::default()
                };
                let mut routers = vec![router(1, vec![1, 3])];
                if n % 5 == 0 {
                    routers.push(router(2, vec![2, 4]));
                }
                let rate_limited = n % 7 == 0;
                HopRow {
                    hop: n,
                    sent: c,
                    received: if rate_limited { c / 2 } else { c },
                    last: Some(rtt),
                    avg: Some(rtt),
                    best: Some(rtt - 0.3),
                    worst: Some(rtt + 0.3),
                    stddev: Some(0.1),
                    routers,
                    rate_limited,
                    error: None,
                }
            })
            .collect();
        let verdict = VerdictLine {
            text: format!("reached 192.0.2.7:443 (open) at hop {hops}"),
            tone: Tone::Good,
        };
        view.update(c, rows, verdict);
    }
    view
}
