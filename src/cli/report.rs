//! `tcpping-diag report`: its flags and help.

use std::path::PathBuf;

use clap::Args;

const REPORT_HELP: &str = "\
The picture follows from the events: one target is drawn over time (every probe up to 2,000,
else smokeping-style bands per time bucket), failures below on the same time axis, coloured
by reason; several targets (files, or events with a \"target\" field) one row per target, worst
first; trace events one row per hop with the break point marked. Memory stays flat however
long the run was.

The picture is SVG, or PNG when OUT ends in .png (other extensions are refused). A regular file
is written through a temporary file beside it, renamed over it at the end (never half a
picture; nothing left behind on failure); -, FIFOs and devices are written directly. The
destination is checked before the input is read. Input lines longer than 1 MiB are skipped
and named; pings with a time beyond ±1e12 s are skipped and counted.

Examples:
  tcpping-diag 127.0.0.1:12001 -n 600 --json > run.ndjson
  tcpping-diag report run.ndjson -o run.svg
  tcpping-diag report a.ndjson b.ndjson c.ndjson -o many.png
  tcpping-diag 127.0.0.1:12001 -n 600 --json | tcpping-diag report -o run.svg";

#[derive(Args, Debug)]
#[command(after_help = REPORT_HELP)]
pub struct ReportArgs {
    /// NDJSON files written with --json (- or none: standard input); several files, or
    /// events with a "target" field, draw one row per target
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// The picture to write: OUT.svg, or OUT.png for PNG (- writes SVG to standard output)
    #[arg(short = 'o', long = "output", value_name = "OUT.svg", required = true)]
    pub output: PathBuf,
}
