//! `tcpping-diag generate man|completions DIR`: the man pages and shell completions of the
//! command line (built by [`manual`](crate::manual) from `Cli::command()`), written into a
//! directory, one path printed per file.

use std::path::PathBuf;

use clap::CommandFactory;

use crate::cli::{Cli, GenerateArgs, Generated};
use crate::error::Error;
use crate::manual;

/// `tcpping-diag generate`: write the files, print their paths. Returns the exit status.
pub fn run(args: &GenerateArgs) -> Result<i32, Error> {
    for f in generate(args)? {
        if !super::shared::say(format_args!("{}\n", f.display()))? {
            break;
        }
    }
    Ok(0)
}

/// Write what `args` asks for; returns the files written.
fn generate(args: &GenerateArgs) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| Error::io(format!("create directory {}", args.dir.display()), e))?;
    let files = match args.what {
        Generated::Man => manual::man_pages(Cli::command()),
        Generated::Completions => manual::completions(&Cli::command()),
    };
    let mut written = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let path = args.dir.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        written.push(path);
    }
    Ok(written)
}
