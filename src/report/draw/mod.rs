//! Drawing: the models in `model` as SVG, with plotters' SVG backend. One module per kind of
//! picture; this one holds what they share (palette, text, title, legend, axes).
//!
//! Colours are Okabe & Ito's colour-blind-safe palette for the data, and Paul Tol's for the
//! failure reasons that go beyond it; every colour is also named in a legend, and failure
//! rows carry their reason as text, so nothing depends on telling colours apart.

mod many;
mod ping;
mod trace;

use std::time::{Duration, UNIX_EPOCH};

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::model::{Categories, Failure, PingModel, TimeBase};

pub use many::many;
pub use ping::ping;
pub use trace::trace;

/// Errors while drawing (the SVG backend writes to a string: in practice none).
pub type DResult<T> = Result<T, Box<dyn std::error::Error>>;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Width of every picture, px.
pub const WIDTH: u32 = 1200;

pub const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
pub const MUTED: RGBColor = RGBColor(0x5f, 0x5f, 0x5f);
pub const GRID: RGBColor = RGBColor(0xe3, 0xe3, 0xe3);
pub const AXIS: RGBColor = RGBColor(0x99, 0x99, 0x99);
/// Echo round trips (Okabe-Ito blue).
pub const ECHO: RGBColor = RGBColor(0x00, 0x72, 0xB2);
/// Handshakes (Okabe-Ito orange).
pub const CONNECT: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
/// The break point of a trace (Okabe-Ito vermillion).
pub const BREAK: RGBColor = RGBColor(0xD5, 0x5E, 0x00);

/// Colours of ICMP reasons, in order of first appearance (Okabe-Ito and Tol, none of the
/// fixed ones above or below).
const ICMP_COLORS: [RGBColor; 7] = [
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0xAA, 0x44, 0x99),
    RGBColor(0x11, 0x77, 0x33),
    RGBColor(0xDD, 0xCC, 0x77),
    RGBColor(0x44, 0xAA, 0x99),
    RGBColor(0x88, 0xCC, 0xEE),
];

/// The colour of each failure category (same index).
pub fn category_colors(c: &Categories) -> Vec<RGBColor> {
    let mut next_icmp = 0;
    c.list
        .iter()
        .map(|cat| match cat.failure {
            Failure::Lost => RGBColor(0xD5, 0x5E, 0x00),
            Failure::TimeoutHandshake => RGBColor(0x33, 0x22, 0x88),
            Failure::TimeoutEcho => RGBColor(0x88, 0x22, 0x55),
            Failure::Refused => RGBColor(0xCC, 0x79, 0xA7),
            Failure::Error => RGBColor(0x99, 0x99, 0x33),
            Failure::Interrupted => RGBColor(0xAA, 0xAA, 0xAA),
            Failure::Icmp { .. } => {
                next_icmp += 1;
                ICMP_COLORS[(next_icmp - 1) % ICMP_COLORS.len()]
            }
            Failure::Unknown(_) | Failure::Others => RGBColor(0x66, 0x66, 0x66),
        })
        .collect()
}

/// A text style of `px` pixels (the SVG backend divides the size by 1.24).
pub fn font(px: f64) -> TextStyle<'static> {
    ("sans-serif", px * 1.24).into_font().color(&INK)
}

/// Every chart's mesh in the house style: no minor lines, grid lines in [`GRID`], axes in
/// [`AXIS`], tick labels at 12 px and axis descriptions at 13.
pub fn house_style<'m, 'a, 'b, X, Y, XT, YT, DB>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType = XT> + ValueFormatter<XT>,
    Y: Ranged<ValueType = YT> + ValueFormatter<YT>,
    DB: DrawingBackend,
{
    mesh.light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(AXIS)
        .label_style(font(12.0))
        .axis_desc_style(font(13.0))
}

/// Bold text.
pub fn bold(px: f64) -> TextStyle<'static> {
    ("sans-serif", px * 1.24, FontStyle::Bold)
        .into_font()
        .color(&INK)
}

/// Roughly how wide `s` is in DejaVu Sans at `px` (for laying out legends; generous).
pub fn text_width(s: &str, px: f64) -> i32 {
    (s.chars().count() as f64 * px * 0.6).ceil() as i32
}

/// Whether `c` may not stand in a picture's text: C0 and C1 control characters (tabs and
/// line ends too: a label is one line), DEL, and the non-characters U+FFFE and U+FFFF (XML
/// refuses C0 but tab and line ends, and those two; the rest would draw as nothing or boxes).
fn is_bad(c: char) -> bool {
    c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// `s` with every character that may not stand in a picture's text replaced by U+FFFD (`�`),
/// visible where it was. (Markup, `& < > " '`, is escaped by the SVG backend.)
pub fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(is_bad) {
        s.chars()
            .map(|c| if is_bad(c) { '\u{FFFD}' } else { c })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// The last line of defence: any character XML 1.0 refuses (C0 but tab and line ends,
/// U+FFFE, U+FFFF) or that is a C1 control, wherever it came from, becomes U+FFFD.
fn xml_safe(svg: String) -> String {
    let bad = |c: char| is_bad(c) && !matches!(c, '\t' | '\n' | '\r');
    if svg.chars().any(bad) {
        svg.chars()
            .map(|c| if bad(c) { '\u{FFFD}' } else { c })
            .collect()
    } else {
        svg
    }
}

/// Cut `s` to at most `max` characters, with an ellipsis.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Text at `at`, in the picture's pixels (whatever part of it `area` is).
pub fn put_text(
    area: &Area,
    s: &str,
    at: (i32, i32),
    style: &TextStyle,
    h: HPos,
    v: VPos,
) -> DResult<()> {
    let (bx, by) = area.get_base_pixel();
    let at = (at.0 - bx, at.1 - by);
    area.draw(&Text::new(
        clean(s).into_owned(),
        at,
        style.pos(Pos::new(h, v)),
    ))?;
    Ok(())
}

/// An axis description written upwards, centred on `at` (picture pixels).
pub fn y_desc(area: &Area, s: &str, at: (i32, i32)) -> DResult<()> {
    let style = font(13.0).transform(FontTransform::Rotate270);
    put_text(area, s, at, &style, HPos::Center, VPos::Center)
}

/// The title (bold) and subtitle lines at the top; returns the height used.
pub fn title_block(area: &Area, title: &str, lines: &[String]) -> DResult<i32> {
    let mut y = 14;
    put_text(
        area,
        &clip(title, 95),
        (24, y),
        &bold(19.0),
        HPos::Left,
        VPos::Top,
    )?;
    y += 28;
    for l in lines {
        put_text(
            area,
            &clip(l, 140),
            (24, y),
            &font(13.5).color(&MUTED),
            HPos::Left,
            VPos::Top,
        )?;
        y += 20;
    }
    Ok(y + 4)
}

/// What a legend entry shows.
#[derive(Clone, Copy)]
pub enum Mark {
    Dot(RGBColor),
    Triangle(RGBColor),
    Line(RGBColor),
    Band(RGBColor, f64),
    Swatch(RGBColor),
    Tick(RGBColor),
}

/// Draw the mark of a legend entry centred at `c`.
fn draw_mark(area: &Area, m: Mark, c: (i32, i32)) -> DResult<()> {
    let (x, y) = c;
    match m {
        Mark::Dot(col) => area.draw(&Circle::new(c, 4, col.filled()))?,
        Mark::Triangle(col) => area.draw(&TriangleMarker::new(c, 5, col.filled()))?,
        Mark::Line(col) => area.draw(&PathElement::new(
            vec![(x - 10, y), (x + 10, y)],
            col.stroke_width(2),
        ))?,
        Mark::Band(col, a) => area.draw(&Rectangle::new(
            [(x - 10, y - 6), (x + 10, y + 6)],
            col.mix(a).filled(),
        ))?,
        Mark::Swatch(col) => area.draw(&Rectangle::new(
            [(x - 6, y - 6), (x + 6, y + 6)],
            col.filled(),
        ))?,
        Mark::Tick(col) => area.draw(&Rectangle::new(
            [(x - 1, y - 7), (x + 2, y + 7)],
            col.filled(),
        ))?,
    }
    Ok(())
}

/// One row of legend entries from `x`, centred on `y`; wraps at the right edge. Returns the
/// y of the last row.
pub fn legend_row(area: &Area, x: i32, y: i32, items: &[(Mark, String)]) -> DResult<i32> {
    let (mut cx, mut cy) = (x, y);
    for (m, label) in items {
        let w = 26 + text_width(label, 13.0) + 22;
        if cx + w > WIDTH as i32 - 16 && cx > x {
            cx = x;
            cy += 22;
        }
        draw_mark(area, *m, (cx + 10, cy))?;
        put_text(
            area,
            label,
            (cx + 26, cy),
            &font(13.0),
            HPos::Left,
            VPos::Center,
        )?;
        cx += w;
    }
    Ok(cy)
}

/// One legend entry per line (for long labels): mark, label, and a right-hand note.
pub fn legend_lines(area: &Area, x: i32, y: i32, items: &[(Mark, String)]) -> DResult<i32> {
    let mut cy = y;
    for (m, label) in items {
        draw_mark(area, *m, (x + 10, cy))?;
        put_text(
            area,
            &clip(label, 150),
            (x + 26, cy),
            &font(13.0),
            HPos::Left,
            VPos::Center,
        )?;
        cy += 21;
    }
    Ok(cy)
}

/// Decimals that tell ticks `range / 5` apart.
pub fn decimals(range: f64) -> usize {
    if !(range.is_finite() && range > 0.0) {
        return 1;
    }
    (-(range / 5.0).log10().floor()).clamp(0.0, 4.0) as usize
}

/// A time in ms as tables show it: three significant digits or more.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else if ms >= 1.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

/// `n` with thousands separators.
pub fn thousands(n: u64) -> String {
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

/// A Unix time as `2026-11-30 00:28:01 UTC`.
pub fn wall(t: f64) -> String {
    if !(0.0..1e11).contains(&t) {
        return "?".into();
    }
    let s = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs_f64(t)).to_string();
    s.replace('T', " ").replace('Z', " UTC")
}

/// The x axis of a picture over time: where it starts, its unit and its words.
#[derive(Clone, Debug)]
pub struct TimeAxis {
    /// The time of x = 0.
    pub t0: f64,
    /// Seconds per unit of x.
    pub unit: f64,
    /// `time since start (s)`, or `probe number`.
    pub desc: String,
    pub lo: f64,
    pub hi: f64,
    /// The span in words, for the subtitle.
    pub span_text: String,
}

impl TimeAxis {
    /// An axis over `[first, last]` (times as the model holds them). `buckets_end`: the end of
    /// the last bucket, when drawing buckets.
    pub fn new(m: &PingModel, first: f64, last: f64, buckets_end: Option<f64>) -> TimeAxis {
        let base = m.time_bases.last().copied().unwrap_or(TimeBase::Wall);
        let span = (last - first).max(0.0);
        let end = buckets_end.unwrap_or(last).max(last);
        if base == TimeBase::Seq {
            let (lo, hi) = pad(first, end, 1.0, buckets_end.is_some());
            return TimeAxis {
                t0: 0.0,
                unit: 1.0,
                desc: "probe number (the file has no timestamps)".into(),
                lo,
                hi,
                span_text: format!("probes {first:.0} to {last:.0}, no timestamps"),
            };
        }
        let (unit, uname) = if span <= 180.0 {
            (1.0, "s")
        } else if span <= 3.0 * 3600.0 {
            (60.0, "min")
        } else {
            (3600.0, "h")
        };
        let dur = humantime::format_duration(Duration::from_secs(span.round() as u64));
        let (desc, span_text) = match base {
            TimeBase::Relative => (
                format!("time since the first probe ({uname}; seq × interval, the file has no timestamps)"),
                format!("{dur}, estimated from seq × interval"),
            ),
            _ => {
                let (a, b) = (wall(first), wall(last));
                let same_day = a.get(..10) == b.get(..10);
                let b = if same_day { b.get(11..).unwrap_or(&b).to_string() } else { b };
                let est = if base == TimeBase::Estimated {
                    " (some times estimated from seq × interval)"
                } else {
                    ""
                };
                (
                    format!("time since {} ({uname})", a.trim_end_matches(" UTC").to_string() + " UTC"),
                    format!("{a} to {b} ({dur}){est}").replace(" UTC to", " to"),
                )
            }
        };
        let (lo, hi) = pad(0.0, (end - first) / unit, 1.0 / unit, buckets_end.is_some());
        TimeAxis {
            t0: first,
            unit,
            desc,
            lo,
            hi,
            span_text,
        }
    }

    pub fn x(&self, t: f64) -> f64 {
        (t - self.t0) / self.unit
    }
}

/// An axis range around [lo, hi]: 2 % on either side for points, none for buckets; at least
/// `min_width` wide.
fn pad(lo: f64, hi: f64, min_width: f64, exact: bool) -> (f64, f64) {
    let w = hi - lo;
    if w < min_width * 1e-3 {
        return (lo - min_width / 2.0, lo + min_width / 2.0);
    }
    if exact {
        (lo, hi)
    } else {
        (lo - w * 0.02, hi + w * 0.02)
    }
}

/// Top of a value axis from 0: `max` plus 8 %, at least something.
pub fn y_top(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        max * 1.08
    } else {
        1.0
    }
}

/// Finish a picture: the SVG text.
pub fn svg(width: u32, height: u32, f: impl FnOnce(&Area) -> DResult<()>) -> DResult<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        f(&root)?;
        root.present()?;
    }
    Ok(xml_safe(buf))
}
