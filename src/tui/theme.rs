//! Colours of the live views, by role (good, bad, warning, plain, dim), so that every widget
//! asks for a role and never for a colour. Only the terminal's own named colours are used
//! (green, red, magenta), never RGB: the terminal's theme adapts them to a dark or a light
//! background. Emphasis that must survive without colour (headers, the selection, failures)
//! is carried by modifiers (reversed, bold), so `NO_COLOR` loses no information.

use std::ffi::OsStr;

use ratatui::style::{Color, Modifier, Style};

/// What a piece of text means, which decides its style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// A reply, a reached target.
    Good,
    /// Loss, a timeout, an ICMP error, a path that breaks.
    Bad,
    /// Partial trouble: a refused connection, a rate-limited hop, some loss.
    Warn,
    /// Ordinary text.
    Plain,
    /// Secondary text: sub-rows, help.
    Dim,
}

/// The styles of one view: coloured, or (with `NO_COLOR`) modifiers only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Palette {
    colour: bool,
}

/// Whether the `NO_COLOR` convention (<https://no-color.org>) asks for no colour: the variable
/// is set and not empty.
pub fn no_color_requested(value: Option<&OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

impl Palette {
    pub fn new(colour: bool) -> Palette {
        Palette { colour }
    }

    /// Coloured unless `NO_COLOR` says otherwise.
    pub fn from_env() -> Palette {
        Palette::new(!no_color_requested(std::env::var_os("NO_COLOR").as_deref()))
    }

    pub fn colour(self) -> bool {
        self.colour
    }

    pub fn tone(self, tone: Tone) -> Style {
        let plain = Style::default();
        let coloured = |c: Color| if self.colour { plain.fg(c) } else { plain };
        match tone {
            Tone::Good => coloured(Color::Green),
            Tone::Bad => coloured(Color::Red).add_modifier(Modifier::BOLD),
            Tone::Warn => coloured(Color::Magenta),
            Tone::Plain => plain,
            Tone::Dim => plain.add_modifier(Modifier::DIM),
        }
    }

    /// The table header and the title bar.
    pub fn header(self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    }

    /// The selected row.
    pub fn selected(self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_is_honoured_only_when_set_and_not_empty() {
        assert!(!no_color_requested(None));
        assert!(!no_color_requested(Some(OsStr::new(""))));
        assert!(no_color_requested(Some(OsStr::new("1"))));
        let plain = Palette::new(false);
        for t in [Tone::Good, Tone::Bad, Tone::Warn, Tone::Plain, Tone::Dim] {
            assert_eq!(plain.tone(t).fg, None);
            assert_eq!(plain.tone(t).bg, None);
        }
        assert_eq!(Palette::new(true).tone(Tone::Bad).fg, Some(Color::Red));
    }
}
