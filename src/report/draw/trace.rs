//! A trace: one row per hop, top to bottom as traceroute prints them, the hop's RTTs as a
//! box (25-75 %, median, whiskers from min to max), its loss at the right, the break point
//! shaded, and the verdict as the subtitle.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::*;
use crate::report::model::{ProbeEnd, TraceModel};

const LEFT: i32 = 250;
const RIGHT: i32 = 220;
const HOP_H: i32 = 30;
const AXIS_H: i32 = 54;

pub fn trace(m: &TraceModel, notes: &[String]) -> DResult<String> {
    let s = m.start.clone().unwrap_or_default();
    let v = m.verdict.clone().unwrap_or_default();
    let n_hops = m
        .hops
        .keys()
        .next_back()
        .copied()
        .unwrap_or(0)
        .max(v.hops.unwrap_or(0))
        .max(m.break_hop().unwrap_or(0))
        .clamp(1, crate::report::model::MAX_HOPS);
    let break_hop = m.break_hop();

    let target = s.target.clone().unwrap_or_else(|| "?".into());
    let mut title = format!("TCP trace to {target}");
    if let Some(a) = s.address.as_deref().filter(|a| *a != target) {
        title += &format!(" ({a})");
    }
    if let Some(src) = &s.source {
        title += &format!(" from {src}");
    }
    if let Some(h) = &s.host {
        title += &format!(" on {h}");
    }
    let verdict = match (&v.text, &v.verdict) {
        (Some(t), _) => t.to_string(),
        (None, Some(k)) => k.replace('_', " "),
        (None, None) => "no verdict in the file (the trace did not finish?)".into(),
    };
    let mut second = Vec::new();
    if let Some(ts) = s.ts.or(m.first_ts) {
        second.push(wall(ts));
    }
    second.push(format!("{n_hops} hops"));
    if let Some(q) = s.queries {
        second.push(format!("{q} probes per hop and round"));
    }
    if let Some(f) = s.flows.filter(|&f| f > 1) {
        second.push(format!("{f} flows"));
    }
    let mut lines = vec![format!("Verdict: {verdict}"), second.join(", ")];
    lines.extend(notes.iter().cloned());
    let head = 14 + 28 + 20 * lines.len() as i32 + 4;
    let legend_h = 40;
    let chart_h = HOP_H * n_hops as i32 + AXIS_H + 10;
    let height = head + legend_h + chart_h + 20;

    let max_rtt = m
        .hops
        .values()
        .filter_map(|h| h.rtt.max())
        .fold(0.0, f64::max);
    let top = y_top(max_rtt);
    let d = decimals(top);
    let fmt = |x: &f64| format!("{x:.d$}");

    svg(WIDTH, height as u32, |root| {
        title_block(root, &title, &lines)?;
        let items = vec![
            (
                Mark::Band(ECHO, 0.35),
                "25-75 % of the hop's RTTs".to_string(),
            ),
            (Mark::Line(INK), "median".to_string()),
            (Mark::Line(MUTED), "min to max".to_string()),
            (Mark::Band(BREAK, 0.18), "where the path breaks".to_string()),
            (Mark::Swatch(BREAK), "loss at the hop".to_string()),
        ];
        legend_row(root, LEFT, head + 16, &items)?;

        let area = root
            .clone()
            .shrink((0, head + legend_h), (WIDTH, chart_h as u32));
        let mut chart = ChartBuilder::on(&area)
            .margin_right(RIGHT)
            .margin_top(6)
            .x_label_area_size(AXIS_H)
            .y_label_area_size(LEFT)
            .build_cartesian_2d(0.0..top, 0.5..(f64::from(n_hops) + 0.5))?;
        house_style(
            chart
                .configure_mesh()
                .x_desc("RTT (ms)")
                .x_labels(10)
                .x_label_formatter(&fmt)
                .y_labels(0)
                .disable_y_mesh(),
        )
        .draw()?;
        let row = |hop: u32| f64::from(n_hops + 1 - hop);
        let px = |x: f64, hop: u32| chart.backend_coord(&(x, row(hop)));
        let (x_left, _) = px(0.0, 1);
        let (x_right, _) = px(top, 1);
        put_text(
            root,
            "hop  router",
            (20, head + legend_h + 4),
            &bold(12.5),
            HPos::Left,
            VPos::Center,
        )?;
        put_text(
            root,
            "loss at the hop",
            (x_right + 16, head + legend_h + 4),
            &bold(12.5),
            HPos::Left,
            VPos::Center,
        )?;
        for hop in 1..=n_hops {
            let (_, y) = px(0.0, hop);
            let half = HOP_H / 2;
            if Some(hop) == break_hop {
                root.draw(&Rectangle::new(
                    [(x_left + 1, y - half), (x_right, y + half)],
                    BREAK.mix(0.18).filled(),
                ))?;
            } else if hop % 2 == 0 {
                root.draw(&Rectangle::new(
                    [(x_left + 1, y - half), (x_right, y + half)],
                    RGBColor(0xf6, 0xf6, 0xf6).filled(),
                ))?;
            }
            put_text(
                root,
                &hop.to_string(),
                (44, y),
                &bold(13.0),
                HPos::Right,
                VPos::Center,
            )?;
            let Some(h) = m.hops.get(&hop) else {
                put_text(
                    root,
                    "no probe recorded",
                    (56, y),
                    &font(13.0).color(&MUTED),
                    HPos::Left,
                    VPos::Center,
                )?;
                continue;
            };
            let mut who = match h.routers.first() {
                Some(r) => clip(r, 26),
                None => "*".to_string(),
            };
            let more = h.routers.len().saturating_sub(1) as u64 + h.more_routers;
            if more > 0 {
                who += &format!(" +{more}");
            }
            if h.ends[ProbeEnd::Reached as usize] > 0 {
                who += " (target)";
            }
            put_text(root, &who, (56, y), &font(13.0), HPos::Left, VPos::Center)?;

            // The box.
            let q = |p| h.rtt.percentile(p);
            let mut box_left = x_left;
            let text_x = if let (Some(lo), Some(q1), Some(med), Some(q3), Some(hi)) =
                (q(0.0), q(25.0), q(50.0), q(75.0), q(100.0))
            {
                let (a, _) = px(lo, hop);
                let (b, _) = px(hi, hop);
                box_left = a;
                root.draw(&PathElement::new(
                    vec![(a, y), (b, y)],
                    MUTED.stroke_width(2),
                ))?;
                for x in [a, b] {
                    root.draw(&PathElement::new(
                        vec![(x, y - 6), (x, y + 6)],
                        MUTED.stroke_width(2),
                    ))?;
                }
                let (c, _) = px(q1, hop);
                let (e, _) = px(q3, hop);
                root.draw(&Rectangle::new(
                    [(c, y - 9), (e.max(c + 1), y + 9)],
                    ECHO.mix(0.35).filled(),
                ))?;
                root.draw(&Rectangle::new(
                    [(c, y - 9), (e.max(c + 1), y + 9)],
                    ECHO.stroke_width(1),
                ))?;
                let (mx, _) = px(med, hop);
                root.draw(&PathElement::new(
                    vec![(mx, y - 10), (mx, y + 10)],
                    INK.stroke_width(3),
                ))?;
                b + 12
            } else {
                put_text(
                    root,
                    &format!("no answer ({} probes)", h.sent()),
                    (x_left + 12, y),
                    &font(13.0).color(&MUTED),
                    HPos::Left,
                    VPos::Center,
                )?;
                x_left + 12 + text_width("no answer (000 probes)", 13.0) + 12
            };
            if Some(hop) == break_hop {
                // Beside the box where there is room: right of it, else left of it, else
                // the short form at the right edge (the subtitle has the whole verdict).
                let long = match &h.reason {
                    Some(reason) => format!("path breaks here: {reason}"),
                    None => "path breaks here".to_string(),
                };
                let short = "path breaks here";
                let style = bold(13.0).color(&BREAK);
                let fits = |s: &str, from: i32, to: i32| to - from >= text_width(s, 13.0);
                if fits(&long, text_x, x_right - 8) {
                    put_text(root, &long, (text_x, y), &style, HPos::Left, VPos::Center)?;
                } else if fits(&long, x_left + 8, box_left - 12) {
                    put_text(
                        root,
                        &long,
                        (box_left - 12, y),
                        &style,
                        HPos::Right,
                        VPos::Center,
                    )?;
                } else if fits(short, text_x, x_right - 8) {
                    put_text(root, short, (text_x, y), &style, HPos::Left, VPos::Center)?;
                } else if fits(short, x_left + 8, box_left - 12) {
                    put_text(
                        root,
                        short,
                        (box_left - 12, y),
                        &style,
                        HPos::Right,
                        VPos::Center,
                    )?;
                } else {
                    put_text(
                        root,
                        short,
                        (x_left + 8, y - HOP_H / 2 + 2),
                        &font(11.0).color(&BREAK),
                        HPos::Left,
                        VPos::Top,
                    )?;
                }
            }
            // Loss at the right: a bar out of 100 % and the figures.
            let loss = h.loss_pct().clamp(0.0, 100.0);
            let bx = x_right + 16;
            root.draw(&Rectangle::new(
                [(bx, y - 7), (bx + 60, y + 7)],
                RGBColor(0xee, 0xee, 0xee).filled(),
            ))?;
            if loss > 0.0 {
                let w = ((loss / 100.0) * 60.0).round().max(1.0) as i32;
                root.draw(&Rectangle::new(
                    [(bx, y - 7), (bx + w, y + 7)],
                    BREAK.filled(),
                ))?;
            }
            put_text(
                root,
                &format!("{loss:.0} %  ({}/{})", h.received(), h.sent()),
                (bx + 68, y),
                &font(12.5),
                HPos::Left,
                VPos::Center,
            )?;
        }
        Ok(())
    })
}
