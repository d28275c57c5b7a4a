//! The targets file: one `HOST:PORT` per line, optional labels `key=value` after it, `#`
//! comments. Pure: parsing and the difference between two versions of a file (for SIGHUP)
//! are tested without a network.
//!
//! ```text
//! # database tier
//! db1.example:5432   name=db1 tier=prod
//! 10.0.0.7:443       name=lb
//! [2001:db8::10]:22
//! ```

use std::collections::HashMap;

use crate::cli::split_host_port;

/// Label names that tcpping-diag sets itself: a targets file cannot use them.
pub const RESERVED_LABELS: [&str; 6] = ["target", "verdict", "type", "code", "router", "le"];
/// Labels on one line, at most.
pub const MAX_LABELS: usize = 16;
/// Length of a label value, at most (bytes).
pub const MAX_LABEL_VALUE: usize = 256;

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

/// A line that could not be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// Whether `name` may be a Prometheus label name set by a user.
fn valid_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "invalid label name '{name}': letters, digits and '_', not starting with a digit"
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
    split_host_port(target).map_err(|e| e.to_string())?;
    let mut labels: Labels = Vec::new();
    for word in words {
        let (k, v) = word.split_once('=').ok_or_else(|| {
            format!("expected a label as key=value after the target, got '{word}'")
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

/// Read a targets file: the good lines, and one error per bad line (the good ones are
/// kept). A target listed twice is an error on its second line.
pub fn parse_targets(bytes: &[u8]) -> (Vec<TargetLine>, Vec<LineError>) {
    let mut good: Vec<TargetLine> = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t,
            Err(_) => {
                errors.push(LineError {
                    line,
                    message: "not UTF-8 text".into(),
                });
                continue;
            }
        };
        match parse_line(text) {
            Ok(None) => {}
            Ok(Some((name, labels))) => {
                if let Some(first) = seen.get(&name) {
                    errors.push(LineError {
                        line,
                        message: format!("{name} is already on line {first}"),
                    });
                    continue;
                }
                seen.insert(name.clone(), line);
                good.push(TargetLine { name, labels, line });
            }
            Err(message) => errors.push(LineError { line, message }),
        }
    }
    (good, errors)
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
        assert_eq!(msg(10), "a:1 is already on line 1");
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
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..400 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    // Mostly printable, with newlines, '=', ':', '#', '[' and some bytes.
                    b" \n=:#[]ab19\xff"[(x % 12) as usize]
                })
                .collect();
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
}
