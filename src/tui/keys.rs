//! Input of the live views as plain values: the keys the views understand ([`Key`]), what a
//! view asks of its caller after a key ([`Action`]), and the translation from crossterm's
//! events. The views' `handle` functions take a [`Key`] and are pure, so they are tested
//! without a terminal.

use std::io;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// A key press the views understand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    /// A letter with Control held (`Ctrl('c')`).
    Ctrl(char),
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Enter,
    Esc,
    Backspace,
}

/// What the terminal reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Key(Key),
    /// The terminal's new size (columns, rows): redraw.
    Resize(u16, u16),
}

/// What a view asks of its caller after a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing changed.
    None,
    /// The view changed: draw it again.
    Redraw,
    /// Leave the view (`q`, Ctrl-C): restore the terminal, print the final report.
    Quit,
    /// Reset the statistics (`r`): the view has cleared its own history; the caller resets
    /// what feeds it.
    Reset,
    /// The view froze (`p`); the caller may stop probing until [`Action::Resume`].
    Pause,
    Resume,
}

/// The key of a crossterm key event (presses only: releases and repeats are dropped).
pub fn key_of(ev: &KeyEvent) -> Option<Key> {
    if ev.kind != KeyEventKind::Press {
        return None;
    }
    Some(match ev.code {
        KeyCode::Char(c) if ev.modifiers.contains(KeyModifiers::CONTROL) => {
            Key::Ctrl(c.to_ascii_lowercase())
        }
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

/// The input of a crossterm event, if a view cares about it.
pub fn input_of(ev: &Event) -> Option<Input> {
    match ev {
        Event::Key(k) => key_of(k).map(Input::Key),
        Event::Resize(w, h) => Some(Input::Resize(*w, *h)),
        _ => None,
    }
}

/// Wait up to `timeout` for an input (None: nothing a view cares about came).
pub fn poll_input(timeout: Duration) -> io::Result<Option<Input>> {
    if !event::poll(timeout)? {
        return Ok(None);
    }
    Ok(input_of(&event::read()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossterm_events_become_keys() {
        let press = |code, mods| KeyEvent::new(code, mods);
        assert_eq!(
            key_of(&press(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Key::Ctrl('c'))
        );
        assert_eq!(
            key_of(&press(KeyCode::Char('q'), KeyModifiers::NONE)),
            Some(Key::Char('q'))
        );
        assert_eq!(
            key_of(&press(KeyCode::Up, KeyModifiers::NONE)),
            Some(Key::Up)
        );
        let mut release = press(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(key_of(&release), None);
        assert_eq!(
            input_of(&Event::Resize(80, 24)),
            Some(Input::Resize(80, 24))
        );
    }
}
