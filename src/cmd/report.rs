//! `tcpping-diag report FILE... -o OUT.svg`: read the NDJSON of `--json` runs, draw it
//! (the [`report`](crate::report) model and drawing), write the picture, and say what was
//! drawn.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::PathBuf;

use crate::cli::ReportArgs;
use crate::error::Error;
use crate::report::file::Destination;
use crate::report::{bad_times_text, Kind, Report};

/// `tcpping-diag report`: read, draw, write. Returns the exit status.
pub fn run(args: ReportArgs) -> Result<i32, Error> {
    // First: a wrong name or a directory we cannot write fails before any reading.
    let dest = Destination::check(&args.output)?;
    let mut r = Report::default();
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    for f in &files {
        if f.as_os_str() == "-" {
            r.read(io::stdin().lock(), "<stdin>")
                .map_err(|e| Error::io("read standard input", e))?;
        } else {
            let file = File::open(f).map_err(|e| Error::io(format!("open {}", f.display()), e))?;
            r.read(
                BufReader::with_capacity(1 << 16, file),
                &f.display().to_string(),
            )
            .map_err(|e| Error::io(format!("read {}", f.display()), e))?;
        }
    }
    if let Some(first) = &r.bad.first_too_long {
        let more = r.bad.too_long - 1;
        let more = if more > 0 {
            format!(" (and {more} more such lines)")
        } else {
            String::new()
        };
        eprintln!("tcpping-diag report: {first}{more}");
    }
    if r.ping.bad_times > 0 {
        eprintln!("tcpping-diag report: {}", bad_times_text(&r.ping));
    }
    if r.bad.count > 0 {
        eprintln!(
            "tcpping-diag report: skipped {} unreadable lines (first: {})",
            r.bad.count,
            r.bad.first.as_deref().unwrap_or("?")
        );
    }
    let (kind, svg) = r.render()?;
    let bytes = dest.write_svg(&svg)?;
    let probes: u64 = r.ping.targets.iter().map(|t| t.sent).sum();
    let n = |k: u64, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    let what = match kind {
        Kind::Trace => n(r.trace.hops.len() as u64, "hop", "hops"),
        _ => {
            let targets = r.ping.targets.iter().filter(|t| t.sent > 0).count() as u64;
            format!(
                "{}, {}",
                n(targets, "target", "targets"),
                n(probes, "probe", "probes")
            )
        }
    };
    let line = format!(
        "wrote {} ({}: {what}, {} KB)",
        args.output.display(),
        kind.as_str(),
        bytes.div_ceil(1024)
    );
    // With -o -, the picture is standard output: the line goes to stderr.
    if args.output.as_os_str() == "-" {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    Ok(0)
}
