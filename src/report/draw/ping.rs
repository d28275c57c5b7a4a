//! One target over time: RTT points (or smoke bands per time bucket) above, failures below
//! on the same time axis.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::*;
use crate::report::model::{PingModel, TargetSeries};

/// Left label area at least (the failure rows' names may need more).
const MIN_LEFT: i32 = 110;
const RIGHT: i32 = 28;
const RTT_H: i32 = 330;
const ROW_H: i32 = 24;

/// Percentile bands of the smoke: (low, high, opacity).
pub const BANDS: [(f64, f64, f64); 2] = [(5.0, 95.0, 0.16), (25.0, 75.0, 0.34)];

/// The failure categories of `t`, by index, in order of first appearance.
pub fn present(m: &PingModel, t: &TargetSeries) -> Vec<usize> {
    (0..m.categories.list.len())
        .filter(|&c| t.failures[c] > 0)
        .collect()
}

/// Title words for a target.
pub fn title_for(t: &TargetSeries) -> String {
    let m = &t.meta;
    let what = match m.mode.as_deref() {
        Some("connect-only") => "TCP connect",
        Some("syn") => "SYN probes",
        _ => "TCP ping",
    };
    let mut s = format!("{what} to {}", t.title());
    if t.meta.name.is_some() {
        s += &format!(" ({})", m.target);
    }
    if let Some(a) = m.address.as_deref().filter(|a| *a != m.target) {
        s += &format!(" ({a})");
    }
    if let Some(src) = &m.source {
        s += &format!(" from {src}");
    }
    if let Some(h) = &m.host {
        s += &format!(" on {h}");
    }
    s
}

/// The counts and times lines of a target.
pub fn counts_lines(t: &TargetSeries) -> Vec<String> {
    let n = |k: u64, one: &str, many: &str| {
        format!("{} {}", thousands(k), if k == 1 { one } else { many })
    };
    let mut s = format!(
        "{}: {}, {} failed ({:.1} % loss)",
        n(t.sent, "probe", "probes"),
        n(t.replies, "reply", "replies"),
        thousands(t.sent - t.replies),
        t.loss_pct()
    );
    match t.meta.interval_ms {
        Some(iv) if iv <= 0.0 => s += ", back to back",
        Some(iv) if iv < 1000.0 => {
            s += &format!(", one every {}", fmt_ms(iv).replace(".000 ms", " ms"))
        }
        Some(iv) => {
            let d = std::time::Duration::from_millis(iv.round() as u64);
            s += &format!(", one every {}", humantime::format_duration(d));
        }
        None => {}
    }
    let p = |h: &crate::report::hist::LogHist, q| h.percentile(q).map(fmt_ms);
    let mut times = Vec::new();
    for (what, h) in [("echo RTT", &t.rtt), ("connect", &t.connect)] {
        if let (Some(a), Some(b), Some(c)) = (p(h, 50.0), p(h, 95.0), p(h, 100.0)) {
            times.push(format!("{what} median {a}, p95 {b}, max {c}"));
        }
    }
    let mut v = vec![s];
    if !times.is_empty() {
        v.push(times.join("; "));
    }
    v
}

/// The bucket width in words.
pub fn width_text(w: f64, seq: bool) -> String {
    if seq {
        format!("{w:.0} probes")
    } else if w < 1.0 {
        format!("{:.0} ms", w * 1e3)
    } else {
        humantime::format_duration(std::time::Duration::from_secs(w.round() as u64)).to_string()
    }
}

pub fn ping(m: &PingModel, notes: &[String]) -> DResult<String> {
    let rows = m.rows();
    let t = *rows.first().ok_or("no probes to draw")?;
    let raw = m.is_raw();
    let (first, last) = m.span().ok_or("no probes to draw")?;
    let buckets = t.buckets.as_ref().ok_or("no probes to draw")?;
    let end = (!raw).then(|| buckets.start(buckets.list.len()));
    let axis = TimeAxis::new(m, first, last, end);
    let colors = category_colors(&m.categories);
    let cats = present(m, t);
    let seq = m.time_bases.last() == Some(&TimeBase::Seq);
    let left = if raw {
        cats.iter()
            .map(|&c| text_width(&row_label(m, t, c), 12.0) + 40)
            .fold(MIN_LEFT, i32::max)
            .min(320)
    } else {
        MIN_LEFT
    };

    let mut lines = vec![axis.span_text.clone()];
    lines.extend(counts_lines(t));
    lines.extend(notes.iter().cloned());
    let head = 14 + 28 + 20 * lines.len() as i32 + 4;
    let legend_h = 40;
    let fail_h = if raw {
        30 + ROW_H * cats.len().max(1) as i32 + 52
    } else {
        190
    };
    let cat_h = 21 * cats.len() as i32 + 24;
    let height = head + legend_h + RTT_H + fail_h + cat_h;

    svg(WIDTH, height as u32, |root| {
        title_block(root, &title_for(t), &lines)?;
        // Legend of the series.
        let mut items = Vec::new();
        if raw {
            if t.rtt.count() > 0 {
                items.push((
                    Mark::Dot(ECHO),
                    "echo RTT (request to echo) of a reply".to_string(),
                ));
            }
            if t.connect.count() > 0 {
                let what = if t.meta.mode.as_deref() == Some("syn") {
                    "SYN to SYN-ACK (half-open probe)"
                } else {
                    "connect: TCP handshake"
                };
                items.push((Mark::Triangle(CONNECT), what.to_string()));
            }
        } else {
            let w = width_text(buckets.width, seq);
            if t.rtt.count() > 0 {
                items.push((Mark::Line(ECHO), format!("median echo RTT per {w}")));
                items.push((Mark::Band(ECHO, BANDS[1].2 + BANDS[0].2), "25-75 %".into()));
                items.push((Mark::Band(ECHO, BANDS[0].2), "5-95 %".into()));
            }
            if t.connect.count() > 0 {
                items.push((
                    Mark::Line(CONNECT),
                    format!("median connect (handshake) per {w}"),
                ));
            }
        }
        legend_row(root, left, head + 16, &items)?;

        let body = root
            .clone()
            .shrink((0, head + legend_h), (WIDTH, RTT_H + fail_h));
        let (top, bottom) = body.split_vertically(RTT_H);
        rtt_panel(&top, t, &axis, raw, left)?;
        let p = Panel {
            m,
            t,
            cats: &cats,
            colors: &colors,
            axis: &axis,
            left,
        };
        if raw {
            failure_rows(&bottom, root, &p)?;
        } else {
            loss_panel(&bottom, &p, seq)?;
        }
        // The failure legend: every category with its count.
        let y0 = head + legend_h + RTT_H + fail_h + 12;
        let items: Vec<(Mark, String)> = cats
            .iter()
            .map(|&c| {
                let cat = &m.categories.list[c];
                let n = t.failures[c];
                (
                    Mark::Swatch(colors[c]),
                    format!(
                        "{}: {} ({:.2} % of probes)",
                        cat.long,
                        thousands(n),
                        n as f64 * 100.0 / t.sent as f64
                    ),
                )
            })
            .collect();
        legend_lines(root, left, y0, &items)?;
        Ok(())
    })
}

/// The top of the RTT axis: every point; for bands, every median and the 5-95 % band of
/// 19 buckets in 20, so a few spikes do not flatten the rest (the band is cut at the top
/// in those, and the chart says so).
fn rtt_max(t: &TargetSeries, raw: bool) -> f64 {
    if raw {
        return t
            .rtt
            .max()
            .unwrap_or(0.0)
            .max(t.connect.max().unwrap_or(0.0));
    }
    let b = t.buckets.as_ref().map(|b| b.list.as_slice()).unwrap_or(&[]);
    let medians = b
        .iter()
        .flat_map(|b| [b.rtt.percentile(50.0), b.connect.percentile(50.0)])
        .flatten()
        .fold(0.0, f64::max);
    let mut tops: Vec<f64> = b.iter().filter_map(|b| b.rtt.percentile(95.0)).collect();
    tops.sort_by(f64::total_cmp);
    let p95 = match tops.len() {
        0 => 0.0,
        n => tops[((n as f64 * 0.95).ceil() as usize).clamp(1, n) - 1],
    };
    p95.max(medians * 1.1)
}

/// The RTT chart of one target in `area`: points, or bands and medians.
pub fn rtt_chart<'a>(
    area: &Area<'a>,
    t: &TargetSeries,
    axis: &TimeAxis,
    raw: bool,
    left: i32,
    y_ticks: usize,
    point_r: i32,
) -> DResult<()> {
    let top = y_top(rtt_max(t, raw));
    let d = decimals(top);
    let fmt = |v: &f64| format!("{v:.d$}");
    let mut chart = ChartBuilder::on(area)
        .margin_right(RIGHT)
        .margin_top(4)
        .x_label_area_size(0)
        .y_label_area_size(left)
        .build_cartesian_2d(axis.lo..axis.hi, 0.0..top)?;
    house_style(
        chart
            .configure_mesh()
            .y_labels(y_ticks)
            .x_labels(12)
            .y_label_formatter(&fmt),
    )
    .draw()?;
    let (x0, y0) = chart.backend_coord(&(axis.lo, 0.0));
    let (_, y1) = chart.backend_coord(&(axis.lo, top));
    let tick_w = text_width(&fmt(&top), 12.0);
    y_desc(area, "RTT (ms)", (x0 - tick_w - 22, (y0 + y1) / 2))?;
    if t.rtt.count() + t.connect.count() == 0 {
        put_text(
            area,
            "no reply and no handshake: every probe failed (marks below)",
            (x0 + 12, (y0 + y1) / 2),
            &font(13.0).color(&MUTED),
            HPos::Left,
            VPos::Center,
        )?;
    }
    if raw {
        let pts = t.raw.as_deref().unwrap_or(&[]);
        chart.draw_series(pts.iter().filter_map(|p| {
            p.connect_ms.map(|c| {
                TriangleMarker::new((axis.x(p.t), f64::from(c)), point_r + 1, CONNECT.filled())
            })
        }))?;
        chart.draw_series(pts.iter().filter_map(|p| {
            p.rtt_ms
                .map(|r| Circle::new((axis.x(p.t), f64::from(r)), point_r, ECHO.filled()))
        }))?;
        return Ok(());
    }
    let Some(b) = &t.buckets else { return Ok(()) };
    let span = |i: usize| (axis.x(b.start(i)), axis.x(b.start(i + 1)));
    for (lo, hi, a) in BANDS {
        chart.draw_series(b.list.iter().enumerate().filter_map(|(i, k)| {
            let (p, q) = (k.rtt.percentile(lo)?, k.rtt.percentile(hi)?);
            let (x0, x1) = span(i);
            Some(Rectangle::new(
                [(x0, p.min(top)), (x1, q.min(top))],
                ECHO.mix(a).filled(),
            ))
        }))?;
    }
    let cut: Vec<f64> = b
        .list
        .iter()
        .filter_map(|k| k.rtt.percentile(95.0))
        .filter(|&q| q > top)
        .collect();
    if !cut.is_empty() {
        let highest = cut.iter().copied().fold(0.0, f64::max);
        let (x, y) = chart.backend_coord(&(axis.hi, top));
        put_text(
            area,
            &format!(
                "5-95 % band cut at the top in {} of {} buckets (highest {})",
                cut.len(),
                b.list.iter().filter(|k| k.rtt.count() > 0).count(),
                fmt_ms(highest)
            ),
            (x - 4, y - 2),
            &font(11.5).color(&MUTED),
            HPos::Right,
            VPos::Bottom,
        )?;
    }
    for (col, width, hist) in [(CONNECT, 2, 1usize), (ECHO, 2, 0)] {
        // Median as steps, broken where a bucket has none.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let mut runs = Vec::new();
        for (i, k) in b.list.iter().enumerate() {
            let h = if hist == 0 { &k.rtt } else { &k.connect };
            match h.percentile(50.0) {
                Some(med) => {
                    let (x0, x1) = span(i);
                    run.push((x0, med));
                    run.push((x1, med));
                }
                None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
                None => {}
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        chart.draw_series(
            runs.into_iter()
                .map(|r| PathElement::new(r, col.stroke_width(width))),
        )?;
    }
    Ok(())
}

fn rtt_panel(area: &Area, t: &TargetSeries, axis: &TimeAxis, raw: bool, left: i32) -> DResult<()> {
    let inner = area.margin(10, 0, 16, 0);
    rtt_chart(&inner, t, axis, raw, left - 16, 7, 3)
}

/// A failure row's name: the category and its count.
fn row_label(m: &PingModel, t: &TargetSeries, c: usize) -> String {
    format!(
        "{} ({})",
        clip(&m.categories.list[c].short, 30),
        thousands(t.failures[c])
    )
}

/// What the failure panels draw.
#[derive(Clone, Copy)]
struct Panel<'a> {
    m: &'a PingModel,
    t: &'a TargetSeries,
    cats: &'a [usize],
    colors: &'a [RGBColor],
    axis: &'a TimeAxis,
    left: i32,
}

/// Small runs: one row per failure category, one tick per failed probe.
fn failure_rows(area: &Area, root: &Area, p: &Panel) -> DResult<()> {
    let Panel {
        m,
        t,
        cats,
        colors,
        axis,
        left,
    } = *p;
    let n = cats.len().max(1);
    let inner = area.margin(30, 0, 16, 0);
    let mut chart = ChartBuilder::on(&inner)
        .margin_right(RIGHT)
        .x_label_area_size(52)
        .y_label_area_size(left - 16)
        .build_cartesian_2d(axis.lo..axis.hi, 0.0..n as f64)?;
    house_style(
        chart
            .configure_mesh()
            .x_desc(axis.desc.as_str())
            .x_labels(12)
            .y_labels(0)
            .disable_y_mesh(),
    )
    .draw()?;
    let row_y = |r: usize| (n - r) as f64 - 0.5;
    let (x_lo, _) = chart.backend_coord(&(axis.lo, 0.0));
    put_text(
        root,
        "failed probes",
        (24, chart.backend_coord(&(axis.lo, n as f64)).1 - 14),
        &bold(12.5),
        HPos::Left,
        VPos::Center,
    )?;
    if cats.is_empty() {
        let (x, y) = chart.backend_coord(&(axis.lo, row_y(0)));
        put_text(
            root,
            "none: every probe was answered",
            (x + 12, y),
            &font(13.0).color(&MUTED),
            HPos::Left,
            VPos::Center,
        )?;
        return Ok(());
    }
    for (r, &c) in cats.iter().enumerate() {
        let (_, y) = chart.backend_coord(&(axis.lo, row_y(r)));
        if r % 2 == 0 {
            let (x1, _) = chart.backend_coord(&(axis.hi, 0.0));
            root.draw(&Rectangle::new(
                [(x_lo + 1, y - ROW_H / 2), (x1, y + ROW_H / 2)],
                RGBColor(0xf4, 0xf4, 0xf4).filled(),
            ))?;
        }
        put_text(
            root,
            &row_label(m, t, c),
            (x_lo - 8, y),
            &font(12.0),
            HPos::Right,
            VPos::Center,
        )?;
    }
    let pts = t.raw.as_deref().unwrap_or(&[]);
    for p in pts {
        let Some(c) = p.failure else { continue };
        let Some(r) = cats.iter().position(|&k| k == usize::from(c)) else {
            continue;
        };
        let (x, y) = chart.backend_coord(&(axis.x(p.t), row_y(r)));
        root.draw(&Rectangle::new(
            [(x - 1, y - 8), (x + 2, y + 8)],
            colors[usize::from(c)].filled(),
        ))?;
    }
    Ok(())
}

/// Long runs: loss per bucket, stacked by reason. A bucket with any failure shows at least
/// 2 px, so one failure in a million is still seen.
fn loss_panel(area: &Area, p: &Panel, seq: bool) -> DResult<()> {
    let Panel {
        t,
        cats,
        colors,
        axis,
        left,
        ..
    } = *p;
    let inner = area.margin(18, 0, 16, 0);
    let b = t.buckets.as_ref().ok_or("no buckets")?;
    let mut chart = ChartBuilder::on(&inner)
        .margin_right(RIGHT)
        .x_label_area_size(52)
        .y_label_area_size(left - 16)
        .build_cartesian_2d(axis.lo..axis.hi, 0.0..100.0)?;
    let desc = format!("loss per {} (%)", width_text(b.width, seq));
    let fmt = |v: &f64| format!("{v:.0}");
    house_style(
        chart
            .configure_mesh()
            .x_desc(axis.desc.as_str())
            .x_labels(12)
            .y_labels(5)
            .y_label_formatter(&fmt),
    )
    .draw()?;
    let (x0, y0) = chart.backend_coord(&(axis.lo, 0.0));
    let (_, y1) = chart.backend_coord(&(axis.lo, 100.0));
    y_desc(area, &desc, (x0 - 52, (y0 + y1) / 2))?;
    stacked_loss(&mut chart, t, cats, colors, axis, 2.0)
}

/// Stacked loss bars of `t`'s buckets in a chart whose y axis is 0..100 %; a bar with any
/// failure is at least `min_px` high.
pub fn stacked_loss<'a, 'b>(
    chart: &mut ChartContext<
        'a,
        SVGBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    t: &TargetSeries,
    cats: &[usize],
    colors: &[RGBColor],
    axis: &TimeAxis,
    min_px: f64,
) -> DResult<()> {
    let b = t.buckets.as_ref().ok_or("no buckets")?;
    let px = f64::from(chart.plotting_area().dim_in_pixel().1.max(1));
    let min_pct = min_px * 100.0 / px;
    let mut rects = Vec::new();
    for (i, k) in b.list.iter().enumerate() {
        if k.probes == 0 {
            continue;
        }
        let (x0, x1) = (axis.x(b.start(i)), axis.x(b.start(i + 1)));
        let mut y = 0.0;
        for &c in cats {
            let n = k.failures[c];
            if n == 0 {
                continue;
            }
            let h = (f64::from(n) * 100.0 / f64::from(k.probes)).max(min_pct);
            rects.push(Rectangle::new(
                [(x0, y), (x1, (y + h).min(100.0))],
                colors[c].filled(),
            ));
            y += h;
        }
    }
    chart.draw_series(rects)?;
    Ok(())
}
