//! `tcpping-diag generate`: its flags.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// `tcpping-diag generate`
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// What to write
    #[arg(value_enum)]
    pub what: Generated,

    /// Directory to write into (created when missing)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generated {
    /// Man pages: tcpping-diag.1 and tcpping-diag-SUBCOMMAND.1 for every subcommand
    Man,
    /// Shell completions: tcpping-diag.bash, _tcpping-diag (zsh), tcpping-diag.fish
    Completions,
}
