//! Columns of the views' tables, declared once each: a title, a width, an alignment. One
//! declaration gives both the header row and the widths, so they cannot drift apart; and the
//! one format for milliseconds in a number column.

use ratatui::layout::Constraint;
use ratatui::widgets::Row;

use super::theme::Palette;

/// One column of a table.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub title: &'static str,
    pub width: Constraint,
    /// Numbers: the title is right-aligned over them.
    pub right: bool,
}

impl Column {
    /// A text column.
    pub const fn text(title: &'static str, width: Constraint) -> Column {
        Column {
            title,
            width,
            right: false,
        }
    }

    /// A number column `width` wide.
    pub const fn number(title: &'static str, width: u16) -> Column {
        Column {
            title,
            width: Constraint::Length(width),
            right: true,
        }
    }
}

/// The header row and the widths of `columns`.
pub fn layout(columns: &[Column], palette: Palette) -> (Row<'static>, Vec<Constraint>) {
    let titles = columns.iter().map(|c| match (c.right, c.width) {
        (true, Constraint::Length(w)) => format!("{:>w$}", c.title, w = usize::from(w)),
        _ => c.title.to_string(),
    });
    let header = Row::new(titles.collect::<Vec<_>>()).style(palette.header());
    (header, columns.iter().map(|c| c.width).collect())
}

/// Milliseconds right-aligned in `width` columns: two decimals below 1 ms (loopback and LAN
/// times, which one decimal shows as 0.0), else one while it fits; `-` for none.
pub fn millis(v: Option<f64>, width: u16) -> String {
    let width = usize::from(width);
    match v {
        Some(v) if v < 1.0 && width >= 4 => format!("{v:>width$.2}"),
        Some(v) if v < 10f64.powi(width as i32 - 2) => format!("{v:>width$.1}"),
        Some(v) => format!("{v:>width$.0}"),
        None => format!("{:>width$}", "-"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_fit_their_column() {
        assert_eq!(millis(Some(1.25), 5), "  1.2");
        assert_eq!(millis(Some(999.9), 5), "999.9");
        assert_eq!(millis(Some(12345.0), 5), "12345");
        assert_eq!(millis(None, 6), "     -");
        assert_eq!(millis(Some(0.039), 5), " 0.04", "below 1 ms: two decimals");
        assert_eq!(millis(Some(0.039), 3), "0.0");
    }
}
