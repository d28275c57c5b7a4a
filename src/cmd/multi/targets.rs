//! The targets file: one `HOST:PORT` per line, optional labels `key=value` after it, `#`
//! comments. Parsing, the one rule for a target given twice, and the difference between
//! two versions of a file (for SIGHUP) are pure and tested without a network; [`read_file`]
//! reads the file within its bounds.
//!
//! ```text
//! # database tier
//! db1.example:5432   name=db1 tier=prod
//! 10.0.0.7:443       name=lb
//! [2001:db8::10]:22
//! ```

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::cli::split_host_port;
use crate::report::draw::thousands;

/// Label names that tcpping-diag sets itself: a targets file cannot use them.
pub const RESERVED_LABELS: [&str; 6] = ["target", "verdict", "type", "code", "router", "le"];
/// Labels on one line, at most.
pub const MAX_LABELS: usize = 16;
/// Length of a label name, at most (bytes).
pub const MAX_LABEL_NAME: usize = 128;
/// Length of a label value, at most (bytes).
pub const MAX_LABEL_VALUE: usize = 256;
/// Size of a targets file, at most (16 MiB).
pub const MAX_FILE: u64 = 16 << 20;
pub use crate::cli::{check_host, MAX_NAME};
/// `HOST:PORT` as typed, at most: the longest name, brackets, a port.
pub const MAX_TARGET: usize = MAX_NAME + 1 + 2 + 6;
/// Input echoed in a message, at most (chars); longer is cut with an ellipsis.
pub const ECHO: usize = 100;
/// Bad lines (and lines listed twice) reported one by one per reading; the rest are
/// counted.
pub const REPORTED: usize = 5;

/// Labels as (name, value), sorted by name.
pub type Labels = Vec<(String, String)>;

/// One target: as typed, its labels, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetLine {
    /// `HOST:PORT` as typed (the `target` label, the key of the target).
    pub name: String,
    pub labels: Labels,
    /// Line number in the file (from 1); 0 for a target given on the command line.
    pub line: usize,
}

/// A line that could not be used (or was a repeat), and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// Line number in the file; 0: the command line.
    pub line: usize,
    pub message: String,
}

/// The targets of the command line and of a file, with what was wrong in them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub targets: Vec<TargetLine>,
    /// The first bad lines (skipped), and how many there were in all.
    pub errors: Vec<LineError>,
    pub bad: usize,
    /// The first targets listed again with the same labels (probed once), and how many.
    pub repeats: Vec<LineError>,
    pub repeated: usize,
}

/// `text` as a message shows it: at most [`ECHO`] characters, cut with an ellipsis.
pub fn clip(text: &str) -> String {
    crate::cli::cut(text, ECHO).into_owned()
}

/// Check a target as typed: `HOST:PORT` of a bounded length, a host that can be resolved.
/// The error echoes at most [`ECHO`] characters of it.
pub fn check_target(target: &str) -> Result<(), String> {
    if target.len() > MAX_TARGET {
        return Err(format!(
            "invalid target '{}': longer than {MAX_TARGET} bytes ({})",
            clip(target),
            target.len()
        ));
    }
    let (host, _) =
        split_host_port(target).map_err(|e| e.to_string().replacen(target, &clip(target), 1))?;
    check_host(host)
}

/// Whether `name` may be a Prometheus label name set by a user.
fn valid_label_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_LABEL_NAME {
        return Err(format!(
            "invalid label name '{}': longer than {MAX_LABEL_NAME} bytes",
            clip(name)
        ));
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "invalid label name '{}': letters, digits and '_', not starting with a digit",
            clip(name)
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "invalid label name '{name}': names starting with '__' are Prometheus's"
        ));
    }
    if RESERVED_LABELS.contains(&name) {
        return Err(format!(
            "label name '{name}' is set by tcpping-diag itself (reserved: {})",
            RESERVED_LABELS.join(", ")
        ));
    }
    Ok(())
}

/// Read one line (without its comment). None: blank or comment only.
pub fn parse_line(text: &str) -> Result<Option<(String, Labels)>, String> {
    let text = text.split('#').next().unwrap_or("");
    let mut words = text.split_whitespace();
    let Some(target) = words.next() else {
        return Ok(None);
    };
    check_target(target)?;
    let mut labels: Labels = Vec::new();
    for word in words {
        let (k, v) = word.split_once('=').ok_or_else(|| {
            format!(
                "expected a label as key=value after the target, got '{}'",
                clip(word)
            )
        })?;
        valid_label_name(k)?;
        if v.is_empty() {
            return Err(format!("label '{k}' has an empty value"));
        }
        if v.len() > MAX_LABEL_VALUE {
            return Err(format!(
                "label '{k}': value longer than {MAX_LABEL_VALUE} bytes"
            ));
        }
        if labels.iter().any(|(have, _)| have == k) {
            return Err(format!("label '{k}' given twice"));
        }
        if labels.len() == MAX_LABELS {
            return Err(format!("more than {MAX_LABELS} labels"));
        }
        labels.push((k.to_string(), v.to_string()));
    }
    labels.sort();
    Ok(Some((target.to_string(), labels)))
}

/// Where a target was first given, in words.
fn where_(line: usize) -> String {
    if line == 0 {
        "on the command line".to_string()
    } else {
        format!("on line {line}")
    }
}

/// The targets given on the command line (checked already) and in a file, by one rule: a
/// target is its `HOST:PORT` as typed. Given again with the same labels, it is one target
/// (probed once; the repeat is noted); with other labels, the later line is an error
/// (skipped). Keeps the first `keep` errors and repeats, and counts them all.
pub fn parse(cli: &[String], file: Option<&[u8]>, keep: usize) -> Parsed {
    let mut p = Parsed::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut add = |p: &mut Parsed, t: TargetLine| {
        let Some(&k) = seen.get(&t.name) else {
            seen.insert(t.name.clone(), p.targets.len());
            p.targets.push(t);
            return;
        };
        let first = &p.targets[k];
        let (list, count, message) = if first.labels == t.labels {
            let message = if t.line == 0 {
                format!("{} listed twice: probed once", clip(&t.name))
            } else {
                format!(
                    "{} is already {}: probed once",
                    clip(&t.name),
                    where_(first.line)
                )
            };
            (&mut p.repeats, &mut p.repeated, message)
        } else {
            let message = format!(
                "{} is already {} with other labels",
                clip(&t.name),
                where_(first.line)
            );
            (&mut p.errors, &mut p.bad, message)
        };
        *count += 1;
        if list.len() < keep {
            list.push(LineError {
                line: t.line,
                message,
            });
        }
    };
    for name in cli {
        add(
            &mut p,
            TargetLine {
                name: name.clone(),
                labels: Vec::new(),
                line: 0,
            },
        );
    }
    let Some(bytes) = file else {
        return p;
    };
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let parsed = match std::str::from_utf8(raw) {
            Ok(text) => parse_line(text),
            Err(_) => Err("not UTF-8 text".into()),
        };
        match parsed {
            Ok(None) => {}
            Ok(Some((name, labels))) => add(&mut p, TargetLine { name, labels, line }),
            Err(message) => {
                p.bad += 1;
                if p.errors.len() < keep {
                    p.errors.push(LineError { line, message });
                }
            }
        }
    }
    p
}

/// Read a targets file within its bounds: opened without blocking (a FIFO with no writer
/// does not hold the open), then refused unless a regular file of at most [`MAX_FILE`]
/// bytes. Err: the one line saying why.
pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let shown = path.display();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            format!(
                "read the targets file {shown}: {}",
                crate::net::describe_io(&e)
            )
        })?;
    let meta = file.metadata().map_err(|e| {
        format!(
            "read the targets file {shown}: {}",
            crate::net::describe_io(&e)
        )
    })?;
    let t = meta.file_type();
    if !t.is_file() {
        let kind = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(format!(
            "the targets file {shown} is {kind}, not a regular file: refused"
        ));
    }
    let too_big = || {
        format!(
            "the targets file {shown} is larger than {} MiB: refused",
            MAX_FILE >> 20
        )
    };
    if meta.len() > MAX_FILE {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&file)
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            format!(
                "read the targets file {shown}: {}",
                crate::net::describe_io(&e)
            )
        })?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(too_big());
    }
    Ok(bytes)
}

/// The lines telling what was wrong in a reading: each reported bad line and repeat, then
/// the counts of the others. `file`: the file's name as shown.
pub fn problem_lines(p: &Parsed, file: &str) -> Vec<String> {
    let at = |line: usize| {
        if line == 0 {
            String::new()
        } else {
            format!("{file} line {line}: ")
        }
    };
    // Of each kind, the lines shown, then the count of those not shown.
    let kinds = [
        (
            p.errors
                .iter()
                .map(|e| format!("{}{} (line skipped)", at(e.line), e.message))
                .collect::<Vec<_>>(),
            p.bad,
            format!("{file}: "),
            "more bad lines (skipped)",
        ),
        (
            p.repeats
                .iter()
                .map(|r| format!("{}{}", at(r.line), r.message))
                .collect(),
            p.repeated,
            String::new(),
            "more targets listed twice (probed once)",
        ),
    ];
    let mut out = Vec::new();
    for (shown, total, prefix, more) in kinds {
        let n = shown.len();
        out.extend(shown);
        if total > n {
            out.push(format!(
                "{prefix}... and {} {more}",
                thousands((total - n) as u64)
            ));
        }
    }
    out
}

/// What changes when a file is read again: targets to stop (indexes into `old`) and to
/// start (indexes into `new`). A target whose labels changed is stopped and started again
/// (its metrics are another series); one that moved to another line is kept.
pub fn diff(old: &[&TargetLine], new: &[TargetLine]) -> (Vec<usize>, Vec<usize>) {
    let by_name: HashMap<&str, &TargetLine> = new.iter().map(|t| (t.name.as_str(), t)).collect();
    let old_names: HashMap<&str, &Labels> =
        old.iter().map(|t| (t.name.as_str(), &t.labels)).collect();
    let stop = old
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            by_name
                .get(t.name.as_str())
                .is_none_or(|n| n.labels != t.labels)
        })
        .map(|(i, _)| i)
        .collect();
    let start = new
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            old_names
                .get(t.name.as_str())
                .is_none_or(|l| **l != t.labels)
        })
        .map(|(i, _)| i)
        .collect();
    (stop, start)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file alone, every error kept.
    fn parse_targets(bytes: &[u8]) -> (Vec<TargetLine>, Vec<LineError>) {
        let p = parse(&[], Some(bytes), usize::MAX);
        (p.targets, p.errors)
    }

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_file_with_comments_labels_and_ipv6() {
        let text = b"# header\n\
            db1.example:5432   tier=prod name=db1   # the primary\n\
            \n\
            \t[2001:db8::10]:22\r\n\
            10.0.0.7:443 name=lb";
        let (good, errors) = parse_targets(text);
        assert_eq!(errors, vec![]);
        assert_eq!(
            good,
            vec![
                TargetLine {
                    name: "db1.example:5432".into(),
                    labels: l(&[("name", "db1"), ("tier", "prod")]),
                    line: 2
                },
                TargetLine {
                    name: "[2001:db8::10]:22".into(),
                    labels: vec![],
                    line: 4
                },
                TargetLine {
                    name: "10.0.0.7:443".into(),
                    labels: l(&[("name", "lb")]),
                    line: 5
                },
            ]
        );
    }

    #[test]
    fn each_bad_line_gets_one_message_with_its_number_and_the_rest_is_kept() {
        let text = b"a:1\n\
            b\n\
            c:99999\n\
            d:4 tier\n\
            e:5 target=x\n\
            f:6 __x=1\n\
            g:7 1abc=2\n\
            h:8 k=1 k=2\n\
            i:9 k=\n\
            a:1 name=dup\n\
            \xff\xfe:1\n\
            [::1:22\n\
            ok:2 a-b=1\n\
            z:26 name=z";
        let (good, errors) = parse_targets(text);
        let names: Vec<&str> = good.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a:1", "z:26"]);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, (2..=13).collect::<Vec<_>>());
        let msg = |n: usize| errors.iter().find(|e| e.line == n).unwrap().message.clone();
        assert!(msg(2).contains("expected HOST:PORT"), "{}", msg(2));
        assert!(msg(3).contains("port"), "{}", msg(3));
        assert!(msg(4).contains("key=value"), "{}", msg(4));
        assert!(msg(5).contains("reserved"), "{}", msg(5));
        assert!(msg(6).contains("'__'"), "{}", msg(6));
        assert!(msg(7).contains("invalid label name"), "{}", msg(7));
        assert!(msg(8).contains("twice"), "{}", msg(8));
        assert!(msg(9).contains("empty value"), "{}", msg(9));
        assert_eq!(msg(10), "a:1 is already on line 1 with other labels");
        assert_eq!(msg(11), "not UTF-8 text");
        assert!(msg(12).contains("']'"), "{}", msg(12));
        assert!(msg(13).contains("invalid label name 'a-b'"), "{}", msg(13));
    }

    #[test]
    fn limits_on_labels() {
        let many: String = (0..=MAX_LABELS).map(|i| format!(" k{i}=v")).collect();
        assert!(parse_line(&format!("h:1{many}"))
            .unwrap_err()
            .contains("more than"));
        let long = "v".repeat(MAX_LABEL_VALUE + 1);
        assert!(parse_line(&format!("h:1 k={long}"))
            .unwrap_err()
            .contains("longer"));
        assert_eq!(parse_line("   # only a comment").unwrap(), None);
        assert_eq!(parse_line("").unwrap(), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut source = crate::junk::Junk::new(0x9e37_79b9);
        for len in 0..400 {
            // Mostly printable, with newlines, '=', ':', '#', '[' and some bytes.
            let junk = source.from(b" \n=:#[]ab19\xff", len);
            let (good, errors) = parse_targets(&junk);
            for t in good {
                assert!(split_host_port(&t.name).is_ok());
            }
            for e in errors {
                assert!(e.line >= 1 && !e.message.is_empty());
            }
        }
    }

    #[test]
    fn a_reload_starts_new_targets_stops_gone_ones_and_restarts_relabelled_ones() {
        let (old, _) = parse_targets(b"a:1\nb:2 tier=prod\nc:3\n");
        let (new, _) = parse_targets(b"c:3\nb:2 tier=test\nd:4\n# a:1 gone\n");
        let old_refs: Vec<&TargetLine> = old.iter().collect();
        let (stop, start) = diff(&old_refs, &new);
        let stopped: Vec<&str> = stop.iter().map(|&i| old[i].name.as_str()).collect();
        let started: Vec<&str> = start.iter().map(|&i| new[i].name.as_str()).collect();
        assert_eq!(stopped, ["a:1", "b:2"]);
        assert_eq!(started, ["b:2", "d:4"]);
        // The same file again: nothing changes.
        let new_refs: Vec<&TargetLine> = new.iter().collect();
        assert_eq!(diff(&new_refs, &new), (vec![], vec![]));
    }

    fn cli(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_rule_for_a_target_given_twice_on_the_command_line_and_in_the_file() {
        // Twice on the command line: one target, one notice.
        let p = parse(&cli(&["a:1", "b:2", "a:1"]), None, REPORTED);
        let names: Vec<&str> = p.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a:1", "b:2"]);
        assert_eq!(p.repeated, 1);
        assert_eq!(p.repeats[0].message, "a:1 listed twice: probed once");
        assert_eq!(p.bad, 0);
        // Twice in the file with the same labels: the same.
        let p = parse(&[], Some(b"a:1 k=v\nb:2\na:1 k=v\n"), REPORTED);
        let names: Vec<&str> = p.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a:1", "b:2"]);
        assert_eq!(
            p.repeats,
            vec![LineError {
                line: 3,
                message: "a:1 is already on line 1: probed once".into()
            }]
        );
        assert_eq!(p.bad, 0);
        // On the command line and in the file, without labels: once.
        let p = parse(&cli(&["a:1"]), Some(b"a:1\n"), REPORTED);
        assert_eq!(p.targets.len(), 1);
        assert_eq!(
            p.repeats[0].message,
            "a:1 is already on the command line: probed once"
        );
        // With other labels: the later line is an error, skipped.
        let p = parse(
            &cli(&["a:1"]),
            Some(b"a:1 tier=prod\nc:3 x=1\nc:3 x=2\n"),
            9,
        );
        let names: Vec<&str> = p.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a:1", "c:3"]);
        assert_eq!(p.targets[1].labels, l(&[("x", "1")]));
        assert_eq!(p.bad, 2);
        assert_eq!(
            p.errors[0].message,
            "a:1 is already on the command line with other labels"
        );
        assert_eq!(p.errors[1].line, 3);
        assert_eq!(p.repeated, 0);
        let lines = problem_lines(&p, "t.txt");
        assert_eq!(
            lines[1],
            "t.txt line 3: c:3 is already on line 2 with other labels (line skipped)"
        );
    }

    #[test]
    fn a_million_bad_lines_are_reported_as_five_and_a_count() {
        let text = "bad\n".repeat(1_000_000);
        let p = parse(&[], Some(text.as_bytes()), REPORTED);
        assert_eq!(p.bad, 1_000_000);
        assert_eq!(p.errors.len(), REPORTED);
        let lines = problem_lines(&p, "t.txt");
        assert_eq!(lines.len(), REPORTED + 1, "{lines:?}");
        assert!(lines[0].starts_with("t.txt line 1: invalid target 'bad'"));
        assert_eq!(lines[5], "t.txt: ... and 999,995 more bad lines (skipped)");
        // Repeats too.
        let text = "a:1\n".repeat(1000);
        let p = parse(&[], Some(text.as_bytes()), REPORTED);
        assert_eq!(p.targets.len(), 1);
        let lines = problem_lines(&p, "t.txt");
        assert_eq!(lines.len(), REPORTED + 1, "{lines:?}");
        assert_eq!(
            lines[5],
            "... and 994 more targets listed twice (probed once)"
        );
    }

    #[test]
    fn a_huge_line_is_echoed_cut_and_impossible_names_are_refused() {
        let huge = format!("{}:80", "h".repeat(10_000_000));
        let err = parse_line(&huge).unwrap_err();
        assert!(err.len() < 200, "{} bytes", err.len());
        assert!(err.contains("longer than") && err.contains('…'), "{err}");
        let huge_label = format!("a:1 {}=v", "k".repeat(10_000_000));
        let err = parse_line(&huge_label).unwrap_err();
        assert!(err.len() < 200, "{} bytes", err.len());
        let junk = format!("a:1 {}", "w".repeat(10_000_000));
        let err = parse_line(&junk).unwrap_err();
        assert!(err.len() < 200, "{} bytes", err.len());
        // A name: at most 253 bytes, labels at most 63.
        let label63 = "a".repeat(63);
        let name253 = [&label63[..], &label63, &label63, &"b".repeat(61)].join(".");
        assert_eq!(name253.len(), 253);
        assert_eq!(check_target(&format!("{name253}:80")), Ok(()));
        assert_eq!(check_target(&format!("{name253}.:80")), Ok(()));
        let err = check_target(&format!("{name253}b:80")).unwrap_err();
        assert!(err.contains("longer than 253 bytes"), "{err}");
        assert!(err.len() < 200, "{err}");
        let err = check_target(&format!("{}.example:80", "a".repeat(64))).unwrap_err();
        assert!(err.contains("label longer than 63"), "{err}");
        assert!(check_target("a..b:80").unwrap_err().contains("empty label"));
        assert_eq!(check_target("[2001:db8::1]:80"), Ok(()));
        assert_eq!(clip(&"é".repeat(150)).chars().count(), ECHO + 1);
    }

    #[test]
    fn only_regular_files_within_the_bound_are_read() {
        use std::os::unix::ffi::OsStrExt;
        let dir = std::env::temp_dir().join(format!("tpd-targets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, b"a:1\n").unwrap();
        assert_eq!(read_file(&good).unwrap(), b"a:1\n");
        let err = read_file(Path::new("/dev/zero")).unwrap_err();
        assert!(
            err.contains("a character device, not a regular file: refused"),
            "{err}"
        );
        assert!(read_file(&dir).unwrap_err().contains("a directory"));
        // A FIFO with no writer: refused at once, not waited on.
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let t = std::time::Instant::now();
        assert!(read_file(&fifo).unwrap_err().contains("a FIFO"));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        // A link to /dev/zero is what it points to.
        let link = dir.join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(read_file(&link).unwrap_err().contains("character device"));
        // One byte over the bound (a sparse file).
        let big = dir.join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_FILE + 1)
            .unwrap();
        assert!(read_file(&big)
            .unwrap_err()
            .contains("larger than 16 MiB: refused"));
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_FILE)
            .unwrap();
        assert_eq!(read_file(&big).unwrap().len() as u64, MAX_FILE);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(499_995), "499,995");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }
}
