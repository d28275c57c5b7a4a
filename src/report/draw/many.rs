//! Many targets: small multiples, one row per target (worst first: by loss, then by median
//! reply time), on one time axis; each row its RTT chart and a strip of its failures.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::ping::{present, rtt_chart, stacked_loss, width_text, BANDS};
use super::*;
use crate::report::model::PingModel;

/// Rows drawn at most; the rest (the best ones) are named in a note.
pub const MAX_ROWS: usize = 40;
const LEFT: i32 = 84;
const RIGHT: i32 = 28;
const TITLE_H: i32 = 24;
const CHART_H: i32 = 92;
const STRIP_H: i32 = 22;
const GAP: i32 = 16;
const ROW_H: i32 = TITLE_H + CHART_H + STRIP_H + GAP;
const AXIS_H: i32 = 52;

pub fn many(m: &PingModel, notes: &[String]) -> DResult<String> {
    let all = m.rows();
    let rows = &all[..all.len().min(MAX_ROWS)];
    let raw = m.is_raw();
    let (first, last) = m.span().ok_or("no probes to draw")?;
    let end = (!raw).then(|| {
        rows.iter()
            .filter_map(|t| t.buckets.as_ref().map(|b| b.start(b.list.len())))
            .fold(last, f64::max)
    });
    let axis = TimeAxis::new(m, first, last, end);
    let colors = category_colors(&m.categories);
    let seq = m.time_bases.last() == Some(&TimeBase::Seq);
    let all_cats: Vec<usize> = (0..m.categories.list.len())
        .filter(|&c| m.categories.list[c].count > 0)
        .collect();

    let sent: u64 = all.iter().map(|t| t.sent).sum();
    let failed: u64 = all.iter().map(|t| t.sent - t.replies).sum();
    let mut lines = vec![
        axis.span_text.clone(),
        format!(
            "{} targets, {} probes, {} failed; rows sorted worst first: by loss, then by median reply time",
            all.len(),
            thousands(sent),
            thousands(failed)
        ),
    ];
    if all.len() > rows.len() {
        lines.push(format!(
            "{} more targets, with less loss or faster replies, are not drawn",
            all.len() - rows.len()
        ));
    }
    lines.extend(notes.iter().cloned());
    let head = 14 + 28 + 20 * lines.len() as i32 + 4;
    let legend_h = 40;
    let cat_h = 21 * all_cats.len() as i32 + 24;
    let height = head + legend_h + ROW_H * rows.len() as i32 + AXIS_H + cat_h;

    // The picture's title: what the rows share.
    let hosts: Vec<&str> = rows.iter().filter_map(|t| t.meta.host.as_deref()).collect();
    let srcs: Vec<&str> = rows
        .iter()
        .filter_map(|t| t.meta.source.as_deref())
        .collect();
    let mut title = format!("TCP ping to {} targets", all.len());
    if let Some(s) = srcs.first().filter(|s| srcs.iter().all(|x| x == *s)) {
        title += &format!(" from {s}");
    }
    if let Some(h) = hosts.first().filter(|h| hosts.iter().all(|x| x == *h)) {
        title += &format!(" on {h}");
    }

    svg(WIDTH, height as u32, |root| {
        title_block(root, &title, &lines)?;
        let mut items = Vec::new();
        if raw {
            items.push((Mark::Dot(ECHO), "echo RTT of a reply".to_string()));
            items.push((
                Mark::Triangle(CONNECT),
                "connect (TCP handshake)".to_string(),
            ));
            items.push((
                Mark::Tick(INK),
                "failed probe (colour: reason, below)".to_string(),
            ));
        } else {
            items.push((Mark::Line(ECHO), "median echo RTT".to_string()));
            items.push((Mark::Band(ECHO, BANDS[1].2 + BANDS[0].2), "25-75 %".into()));
            items.push((Mark::Band(ECHO, BANDS[0].2), "5-95 %".into()));
            items.push((Mark::Line(CONNECT), "median connect".to_string()));
            items.push((
                Mark::Swatch(INK),
                "loss per bucket, by reason (below)".to_string(),
            ));
        }
        legend_row(root, 24, head + 16, &items)?;

        for (r, t) in rows.iter().enumerate() {
            let y = head + legend_h + ROW_H * r as i32;
            let last_row = r + 1 == rows.len();
            // Row title: name, then the figures.
            let name = clip(t.title(), 48);
            put_text(
                root,
                &name,
                (24, y + 10),
                &bold(14.0),
                HPos::Left,
                VPos::Center,
            )?;
            let mut figs = String::new();
            if t.meta.name.is_some() {
                figs += &format!("{}  ·  ", t.meta.target);
            }
            figs += &format!(
                "{:.1} % loss  ·  median {}  ·  {} probes",
                t.loss_pct(),
                t.reply_times()
                    .percentile(50.0)
                    .map_or("no reply".into(), fmt_ms),
                thousands(t.sent)
            );
            if let Some(b) = t.buckets.as_ref().filter(|_| !raw) {
                figs += &format!("  ·  buckets of {}", width_text(b.width, seq));
            }
            let x2 = 24 + (name.chars().count() as f64 * 14.0 * 0.66) as i32 + 16;
            put_text(
                root,
                &figs,
                (x2, y + 10),
                &font(13.0).color(&MUTED),
                HPos::Left,
                VPos::Center,
            )?;

            let chart_area = root
                .clone()
                .shrink((0, y + TITLE_H), (WIDTH, CHART_H as u32));
            rtt_chart(&chart_area, t, &axis, raw, LEFT, 3, 2)?;

            let strip_h = STRIP_H + if last_row { AXIS_H } else { 0 };
            let strip = root
                .clone()
                .shrink((0, y + TITLE_H + CHART_H), (WIDTH, strip_h as u32));
            let mut chart = ChartBuilder::on(&strip)
                .margin_right(RIGHT)
                .margin_top(2)
                .x_label_area_size(if last_row { AXIS_H } else { 0 })
                .y_label_area_size(LEFT)
                .build_cartesian_2d(axis.lo..axis.hi, 0.0..100.0)?;
            let mut mesh = chart.configure_mesh();
            house_style(mesh.y_labels(0).disable_y_mesh().x_labels(12));
            if last_row {
                mesh.x_desc(axis.desc.as_str());
            }
            mesh.draw()?;
            let (x_lo, y_mid) = chart.backend_coord(&(axis.lo, 50.0));
            put_text(
                root,
                if raw { "failures" } else { "loss %" },
                (x_lo - 8, y_mid),
                &font(11.5).color(&MUTED),
                HPos::Right,
                VPos::Center,
            )?;
            let cats = present(m, t);
            if raw {
                for p in t.raw.as_deref().unwrap_or(&[]) {
                    let Some(c) = p.failure else { continue };
                    let (x, y) = chart.backend_coord(&(axis.x(p.t), 50.0));
                    root.draw(&Rectangle::new(
                        [(x - 1, y - 8), (x + 2, y + 8)],
                        colors[usize::from(c)].filled(),
                    ))?;
                }
            } else {
                stacked_loss(&mut chart, t, &cats, &colors, &axis, 5.0)?;
            }
        }
        let y0 = head + legend_h + ROW_H * rows.len() as i32 + AXIS_H + 12;
        let items: Vec<(Mark, String)> = all_cats
            .iter()
            .map(|&c| {
                let cat = &m.categories.list[c];
                (
                    Mark::Swatch(colors[c]),
                    format!("{}: {}", cat.long, thousands(cat.count)),
                )
            })
            .collect();
        legend_lines(root, 24, y0, &items)?;
        Ok(())
    })
}
