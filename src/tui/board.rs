//! The board of many targets: one row per target with its labels, the state of its last
//! probe coloured by verdict, loss % and RTT median/p99 over a bounded window of recent
//! probes, and a sparkline. Sorted worst first (`s` changes the order), `/` filters by name or
//! label, arrows and page keys scroll. Built for thousands of targets: a probe updates its
//! row's figures at once (a sort of at most one window); new figures reorder the rows at most
//! once a second (so rows do not jump at every probe), a key or a new target at once; only the
//! visible rows are drawn.

use std::cmp::Ordering;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::columns::{layout, millis, Column};
use super::keys::{Action, Key};
use super::spark::RttRing;
use super::theme::{Palette, Tone};

/// Probes a target's figures are computed over unless the caller says otherwise.
pub const WINDOW: usize = 60;
/// The largest window allowed (memory per target stays small).
pub const MAX_WINDOW: usize = 1024;
/// How often new figures may reorder the rows.
pub const RESORT: Duration = Duration::from_secs(1);

/// What a target's last probe got.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    /// No probe finished yet.
    Pending,
    /// An answer after so many milliseconds.
    Reply(f64),
    /// The connection was made but the server's answer never came.
    Lost,
    /// Nothing came back.
    Timeout,
    /// The target refused (RST).
    Refused,
    /// An ICMP error from a router (`reason`: "host unreachable", ...).
    Icmp { reason: String, router: IpAddr },
    /// A local error (the probe could not be sent).
    Error(String),
}

impl Probe {
    /// How bad it is, for the worst-first order (higher is worse).
    fn severity(&self) -> u8 {
        match self {
            Probe::Reply(_) => 0,
            Probe::Pending => 1,
            Probe::Refused => 2,
            Probe::Lost | Probe::Timeout => 3,
            Probe::Icmp { .. } | Probe::Error(_) => 4,
        }
    }

    fn tone(&self) -> Tone {
        match self {
            Probe::Reply(_) => Tone::Good,
            Probe::Pending => Tone::Dim,
            Probe::Refused => Tone::Warn,
            _ => Tone::Bad,
        }
    }

    fn text(&self) -> String {
        match self {
            Probe::Pending => "…".to_string(),
            // below 1 ms (loopback, a LAN) three decimals: one would say 0.0
            Probe::Reply(ms) if *ms < 1.0 => format!("reply {ms:.3} ms"),
            Probe::Reply(ms) => format!("reply {ms:.1} ms"),
            Probe::Lost => "LOST".to_string(),
            Probe::Timeout => "timeout".to_string(),
            Probe::Refused => "refused".to_string(),
            Probe::Icmp { reason, router } => format!("{reason} from {router}"),
            Probe::Error(e) => format!("error: {e}"),
        }
    }
}

/// The order of the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// Loss, then the last probe's state, then p99, worst first.
    Worst,
    /// By name.
    Name,
    /// Slowest median first.
    Rtt,
    /// As the targets were given.
    Given,
}

impl Sort {
    fn next(self) -> Sort {
        match self {
            Sort::Worst => Sort::Name,
            Sort::Name => Sort::Rtt,
            Sort::Rtt => Sort::Given,
            Sort::Given => Sort::Worst,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sort::Worst => "worst first",
            Sort::Name => "name",
            Sort::Rtt => "slowest first",
            Sort::Given => "as given",
        }
    }
}

/// One target's row.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub labels: Vec<String>,
    pub last: Probe,
    /// Probes finished in all.
    pub probes: u64,
    window: RttRing,
    loss: f64,
    median: Option<f64>,
    p99: Option<f64>,
    /// Lowercase name and labels, for the filter.
    haystack: String,
    /// Taken off the board; its id is free.
    gone: bool,
}

impl Target {
    /// Loss % over the window.
    pub fn loss_pct(&self) -> f64 {
        self.loss
    }
    /// RTT median over the window (ms).
    pub fn median(&self) -> Option<f64> {
        self.median
    }
    /// RTT 99th percentile over the window (ms).
    pub fn p99(&self) -> Option<f64> {
        self.p99
    }

    fn refresh(&mut self, scratch: &mut Vec<f64>) {
        scratch.clear();
        scratch.extend(self.window.iter().flatten());
        scratch.sort_by(f64::total_cmp);
        let n = self.window.len();
        self.loss = if n == 0 {
            0.0
        } else {
            100.0 * (n - scratch.len()) as f64 / n as f64
        };
        let rank = |q: f64| {
            (!scratch.is_empty()).then(|| {
                let i = (q * scratch.len() as f64).ceil() as usize;
                scratch[i.clamp(1, scratch.len()) - 1]
            })
        };
        self.median = rank(0.5);
        self.p99 = rank(0.99);
    }
}

/// The state of the board.
#[derive(Clone, Debug)]
pub struct Board {
    targets: Vec<Target>,
    /// Ids of removed targets, reused by the next ones added (removed: out of the order).
    free: Vec<usize>,
    /// Indexes of the targets shown, in display order.
    order: Vec<usize>,
    /// The order must be rebuilt now (a target added, the sort or the filter changed).
    dirty: bool,
    /// Figures changed since the order was built: rebuilt at the next frame at least
    /// [`RESORT`] after the last, so rows do not jump at every probe.
    stale: bool,
    sorted_at: Option<Instant>,
    sort: Sort,
    filter: String,
    /// The filter is being typed.
    editing: bool,
    offset: usize,
    /// Rows visible at the last draw (page keys move by it).
    page: usize,
    window: usize,
    scratch: Vec<f64>,
    palette: Palette,
}

impl Board {
    /// An empty board computing figures over the last `window` probes (at most
    /// [`MAX_WINDOW`]).
    pub fn new(window: usize, palette: Palette) -> Board {
        Board {
            targets: Vec::new(),
            free: Vec::new(),
            order: Vec::new(),
            dirty: true,
            stale: false,
            sorted_at: None,
            sort: Sort::Worst,
            filter: String::new(),
            editing: false,
            offset: 0,
            page: 20,
            window: window.clamp(1, MAX_WINDOW),
            scratch: Vec::new(),
            palette,
        }
    }

    /// Add a target; returns its id for [`Board::record`].
    pub fn add(&mut self, name: impl Into<String>, labels: Vec<String>) -> usize {
        let name = name.into();
        let haystack = std::iter::once(name.as_str())
            .chain(labels.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("\n")
            .to_lowercase();
        let target = Target {
            name,
            labels,
            last: Probe::Pending,
            probes: 0,
            window: RttRing::new(self.window),
            loss: 0.0,
            median: None,
            p99: None,
            haystack,
            gone: false,
        };
        self.dirty = true;
        match self.free.pop() {
            Some(id) => {
                self.targets[id] = target;
                id
            }
            None => {
                self.targets.push(target);
                self.targets.len() - 1
            }
        }
    }

    /// Take target `id` off the board (its id goes to the next target added).
    pub fn remove(&mut self, id: usize) {
        if let Some(t) = self.targets.get_mut(id).filter(|t| !t.gone) {
            t.gone = true;
            self.free.push(id);
            self.dirty = true;
        }
    }

    /// A probe of target `id` finished (an unknown id is ignored).
    pub fn record(&mut self, id: usize, probe: Probe) {
        let Some(t) = self.targets.get_mut(id) else {
            return;
        };
        t.window.push(match probe {
            Probe::Reply(ms) => Some(ms),
            _ => None,
        });
        t.last = probe;
        t.probes += 1;
        t.refresh(&mut self.scratch);
        self.stale = true;
    }

    /// Forget every figure (`r`), keep the targets.
    pub fn reset(&mut self) {
        for t in &mut self.targets {
            t.window.clear();
            t.last = Probe::Pending;
            t.probes = 0;
            t.refresh(&mut self.scratch);
        }
        self.dirty = true;
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    pub fn sort(&self) -> Sort {
        self.sort
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Whether `/` is collecting a filter (keys go to it).
    pub fn editing(&self) -> bool {
        self.editing
    }

    /// The first row shown.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The ids of the targets shown (filtered), in display order, up to date with every
    /// figure.
    pub fn order(&mut self) -> &[usize] {
        self.dirty |= self.stale;
        self.refresh_order(Instant::now());
        &self.order
    }

    /// The offset that shows the last page.
    fn last_offset(&self) -> usize {
        self.order.len().saturating_sub(self.page)
    }

    /// Rebuild the order when it must, or when figures changed and the last rebuild is at
    /// least [`RESORT`] old.
    fn refresh_order(&mut self, now: Instant) {
        let due = self
            .sorted_at
            .is_none_or(|t| now.saturating_duration_since(t) >= RESORT);
        if !(self.dirty || self.stale && due) {
            return;
        }
        self.dirty = false;
        self.stale = false;
        self.sorted_at = Some(now);
        let needle = self.filter.to_lowercase();
        self.order.clear();
        self.order.extend((0..self.targets.len()).filter(|&i| {
            let t = &self.targets[i];
            !t.gone && t.haystack.contains(&needle)
        }));
        let ts = &self.targets;
        let cmp: fn(&Target, &Target) -> Ordering = match self.sort {
            Sort::Worst => |a, b| {
                b.loss
                    .total_cmp(&a.loss)
                    .then(b.last.severity().cmp(&a.last.severity()))
                    .then(larger_first(a.p99, b.p99))
                    .then_with(|| a.name.cmp(&b.name))
            },
            Sort::Name => |a, b| a.name.cmp(&b.name),
            Sort::Rtt => |a, b| larger_first(a.median, b.median).then_with(|| a.name.cmp(&b.name)),
            Sort::Given => |_, _| Ordering::Equal,
        };
        self.order.sort_by(|&a, &b| cmp(&ts[a], &ts[b]));
        self.offset = self.offset.min(self.last_offset());
    }

    /// `/` filter (Enter keeps it, Esc clears it), `s` sort, `r` reset, arrows and page keys
    /// scroll, `q`/Ctrl-C quit.
    pub fn handle(&mut self, key: Key) -> Action {
        if self.editing {
            match key {
                Key::Ctrl('c') => return Action::Quit,
                Key::Enter => self.editing = false,
                Key::Esc => {
                    self.editing = false;
                    self.filter.clear();
                }
                Key::Backspace => {
                    self.filter.pop();
                }
                Key::Char(c) => self.filter.push(c),
                _ => return Action::None,
            }
            self.dirty = true;
            self.offset = 0;
            return Action::Redraw;
        }
        self.order();
        let last = self.last_offset();
        let to = match key {
            Key::Char('q') | Key::Ctrl('c') => return Action::Quit,
            Key::Char('/') => {
                self.editing = true;
                return Action::Redraw;
            }
            Key::Char('s') => {
                self.sort = self.sort.next();
                self.dirty = true;
                return Action::Redraw;
            }
            Key::Char('r') => {
                self.reset();
                return Action::Reset;
            }
            Key::Up | Key::Char('k') => self.offset.saturating_sub(1),
            Key::Down | Key::Char('j') => self.offset + 1,
            Key::PageUp => self.offset.saturating_sub(self.page),
            Key::PageDown => self.offset + self.page,
            Key::Home => 0,
            Key::End => last,
            _ => return Action::None,
        };
        let to = to.min(last);
        if to == self.offset {
            return Action::None;
        }
        self.offset = to;
        Action::Redraw
    }

    /// Draw the board on the frame.
    pub fn render(&mut self, frame: &mut Frame) {
        self.refresh_order(Instant::now());
        let [title, body, help] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(2),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        let p = self.palette;
        let filter = match (self.editing, self.filter.is_empty()) {
            (true, _) => format!("  filter: /{}▏", self.filter),
            (false, false) => format!("  filter: /{}", self.filter),
            (false, true) => String::new(),
        };
        let head = format!(
            "{} targets, {} shown, sorted {}{filter}",
            self.targets.len() - self.free.len(),
            self.order.len(),
            self.sort.name()
        );
        frame.render_widget(Paragraph::new(head).style(p.header()), title);
        self.render_rows(frame, body);
        let keys = "q quit  / filter  s sort  r reset  ↑↓ PgUp PgDn scroll";
        frame.render_widget(Paragraph::new(keys).style(p.tone(Tone::Dim)), help);
    }

    fn render_rows(&mut self, frame: &mut Frame, area: Rect) {
        let p = self.palette;
        let height = usize::from(area.height.saturating_sub(1)).max(1);
        self.page = height;
        self.offset = self.offset.min(self.last_offset());
        let (num, spark) = if area.width >= 100 { (6, 20) } else { (5, 8) };
        let ms = |v| millis(v, num);
        let rows = self.order.iter().skip(self.offset).take(height).map(|&i| {
            let t = &self.targets[i];
            let loss_tone = if t.loss >= 50.0 {
                Tone::Bad
            } else if t.loss > 0.0 {
                Tone::Warn
            } else {
                Tone::Plain
            };
            Row::new(vec![
                Cell::from(t.name.as_str()),
                Cell::from(Span::styled(t.labels.join(" "), p.tone(Tone::Dim))),
                Cell::from(Span::styled(t.last.text(), p.tone(t.last.tone()))),
                Cell::from(Span::styled(format!("{:>5.1}%", t.loss), p.tone(loss_tone))),
                Cell::from(ms(t.median)),
                Cell::from(ms(t.p99)),
                Cell::from(t.window.sparkline(usize::from(spark))),
            ])
        });
        let (header, widths) = layout(
            &[
                Column::text("Target", Constraint::Fill(3)),
                Column::text("Labels", Constraint::Fill(1)),
                Column::text("Last", Constraint::Fill(2)),
                Column::number("Loss%", 6),
                Column::number("Med", num),
                Column::number("p99", num),
                Column::text("Recent", Constraint::Length(spark)),
            ],
            p,
        );
        frame.render_widget(Table::new(rows, widths).header(header), area);
    }
}

/// The larger value first; a missing value last.
fn larger_first(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// A board of `n` synthetic targets with a few probes each (some lost, some refused, one
/// ICMP error every 97): for benchmarks of [`Board::render`] and [`Board::record`].
pub fn synthetic_board(n: usize, palette: Palette) -> Board {
    let mut b = Board::new(WINDOW, palette);
    for i in 0..n {
        let id = b.add(
            format!("host-{i:05}.example:443"),
            vec![format!("dc={}", i % 7)],
        );
        for k in 0..8 {
            let probe = match (i + k) % 29 {
                0 => Probe::Timeout,
                1 if i % 5 == 0 => Probe::Refused,
                _ if i % 97 == 3 => Probe::Icmp {
                    reason: "host unreachable".to_string(),
                    router: IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]),
                },
                _ => Probe::Reply(1.0 + ((i * 7 + k * 13) % 50) as f64 / 10.0),
            };
            b.record(id, probe);
        }
    }
    b
}
