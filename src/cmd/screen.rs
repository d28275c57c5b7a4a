//! Stdout while a live view has the screen. A command's writer writes to [`ScreenStdout`]
//! as to stdout; while the view is drawn, what it writes is kept ([`Screen::Keep`]: trace's
//! start line and first cycle, written on the normal screen after the view) or dropped
//! ([`Screen::Drop`]: the many-targets lines the board replaces); [`Hold::release`] lets
//! later writes through. Without a view the writes go straight through, as to a
//! `BufWriter<Stdout>`.

use std::cell::RefCell;
use std::io::{self, BufWriter, Stdout, Write};
use std::rc::Rc;

/// What becomes of the writes while the view is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// No view: through to stdout.
    Through,
    /// Kept, and written when released.
    Keep,
    /// Dropped.
    Drop,
}

enum Held {
    Through,
    Keep(Vec<u8>),
    Drop,
}

/// Buffered stdout, held back while the view is drawn.
pub struct ScreenStdout {
    out: BufWriter<Stdout>,
    held: Rc<RefCell<Held>>,
}

/// Lets go of what [`ScreenStdout`] holds.
pub struct Hold {
    held: Rc<RefCell<Held>>,
}

/// Buffered stdout, and its hold (`screen` from the start).
pub fn screen_stdout(screen: Screen) -> (ScreenStdout, Hold) {
    let held = Rc::new(RefCell::new(match screen {
        Screen::Through => Held::Through,
        Screen::Keep => Held::Keep(Vec::new()),
        Screen::Drop => Held::Drop,
    }));
    let out = ScreenStdout {
        out: BufWriter::new(io::stdout()),
        held: Rc::clone(&held),
    };
    (out, Hold { held })
}

impl Hold {
    /// Write what was kept, in order, and let later writes through.
    pub fn release(&self) -> io::Result<()> {
        let Held::Keep(bytes) = std::mem::replace(&mut *self.held.borrow_mut(), Held::Through)
        else {
            return Ok(());
        };
        let mut out = io::stdout().lock();
        out.write_all(&bytes)?;
        out.flush()
    }
}

impl Write for ScreenStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut *self.held.borrow_mut() {
            Held::Through => self.out.write(buf),
            Held::Keep(kept) => {
                kept.extend_from_slice(buf);
                Ok(buf.len())
            }
            Held::Drop => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match *self.held.borrow() {
            Held::Through => self.out.flush(),
            Held::Keep(_) | Held::Drop => Ok(()),
        }
    }
}
