//! Errors of the program's setup: each names what failed, so one line on stderr says it all.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user typed something we cannot use (exit status 2).
    #[error("{0}")]
    Usage(String),
    /// Resolution, privileges, configuration that cannot work (exit status 2).
    #[error("{0}")]
    Setup(String),
    /// A system call failed; `op` says which operation it was part of.
    #[error("{op}: {}", crate::net::describe_io(.source))]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub fn io(op: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            op: op.into(),
            source,
        }
    }
}
