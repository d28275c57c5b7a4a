//! The man pages and completions checked against the real command line: every command has
//! a page with examples, every example parses, the shells complete every flag.

use super::*;
use crate::cli::Cli;
use clap::{CommandFactory, Parser};

/// The command line as the man pages see it.
fn command() -> clap::Command {
    for_pages(Cli::command())
}

fn page_text(name: &str) -> String {
    let (_, bytes) = man_pages(Cli::command())
        .into_iter()
        .find(|(n, _)| n == &format!("{name}.1"))
        .unwrap_or_else(|| panic!("no page {name}.1"));
    String::from_utf8(bytes).unwrap()
}

#[test]
fn every_command_has_a_page_with_examples() {
    let cmd = command();
    for (path, _) in commands(&cmd) {
        let page = PAGES.iter().find(|p| p.command == path).unwrap_or_else(|| {
            panic!(
                "command '{path}' has no hand-written man page section: add a Page with \
                 command: \"{path}\" and an EXAMPLES section to src/manual/pages.rs"
            )
        });
        let examples = page
            .sections
            .iter()
            .filter(|s| s.title == "EXAMPLES")
            .flat_map(|s| s.blocks)
            .filter(|b| matches!(b, Block::Example(..)))
            .count();
        assert!(examples > 0, "the page of '{path}' has no EXAMPLES");
    }
}

#[test]
fn every_page_is_for_a_command_that_exists() {
    let cmd = command();
    let paths: Vec<String> = commands(&cmd).into_iter().map(|(p, _)| p).collect();
    for page in PAGES {
        assert!(
            paths.iter().any(|p| p == page.command),
            "src/manual/pages.rs has a page for '{}', which is not a command (any more?)",
            page.command
        );
    }
}

#[test]
fn every_example_parses_with_the_real_command_line() {
    for page in PAGES {
        for section in page.sections {
            for block in section.blocks {
                let Block::Example(_, line) = block else {
                    continue;
                };
                let line = line.split(" | ").next().unwrap();
                assert!(
                    !line.contains(['\'', '"', '$', '`', ';', '&', '>', '<']),
                    "example '{line}': keep examples to plain words (and a final | ...)"
                );
                let words: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(words.first(), Some(&BIN), "example '{line}'");
                let want: Vec<&str> = page.command.split_whitespace().collect();
                assert!(
                    words[1..].starts_with(&want),
                    "example '{line}' is on the page of '{}' but runs another command",
                    page.command
                );
                let cli = Cli::try_parse_from(&words)
                    .unwrap_or_else(|e| panic!("example '{line}' does not parse:\n{e}"));
                if page.command.is_empty() {
                    assert!(cli.command.is_none(), "example '{line}' is a subcommand");
                }
            }
        }
    }
}

#[test]
fn pages_have_clap_options_and_the_hand_written_sections() {
    let main = page_text("tcpping-diag");
    for want in [
        ".TH tcpping-diag 1",
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH SUBCOMMANDS",
        ".SH VERDICTS",
        ".SH PRIVILEGES",
        ".SH \"EXIT STATUS\"",
        ".SH EXAMPLES",
        ".SH \"SEE ALSO\"",
        "tcpping\\-diag\\-serve",
    ] {
        assert!(main.contains(want), "main page lacks {want:?}:\n{main}");
    }
    // Every flag of the command line is in OPTIONS (from clap, so it cannot drift).
    let cmd = command();
    for (path, c) in commands(&cmd) {
        let text = page_text(&page_name(&path));
        for arg in c.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(text.contains(&escaped), "page of '{path}' lacks --{long}");
            }
        }
        assert!(text.contains(".SH EXAMPLES"), "page of '{path}'");
    }
    let serve = page_text("tcpping-diag-serve");
    assert!(serve.contains(".TH tcpping-diag-serve 1"), "{serve}");
    assert!(serve.contains("\\-\\-loss\\-mode"), "{serve}");
}

#[test]
fn no_raw_roff_requests_leak_from_the_text() {
    // Text lines never start with '.' or '\'' (the roff crate escapes them); only our
    // macros and clap_mangen's are requests.
    for (name, bytes) in man_pages(Cli::command()) {
        let text = String::from_utf8(bytes).unwrap();
        for line in text.lines().filter(|l| l.starts_with('.')) {
            let req = line[1..].split_whitespace().next().unwrap_or("");
            assert!(
                [
                    "TH", "SH", "SS", "PP", "TP", "RS", "RE", "nf", "fi", "ie", "el", "IP", "B",
                    "I", "br", "sp", "TQ", "P", "LP"
                ]
                .contains(&req),
                "{name}: unexpected request {line:?}"
            );
        }
    }
}

#[test]
fn the_serve_page_shows_the_shipped_serve_conf() {
    let conf = include_str!("../../debian/serve.conf");
    let line = conf
        .lines()
        .find(|l| l.starts_with("SERVE_FLAGS="))
        .expect("debian/serve.conf sets SERVE_FLAGS");
    let shown = PAGES
        .iter()
        .filter(|p| p.command == "serve")
        .flat_map(|p| p.sections)
        .flat_map(|s| s.blocks)
        .any(|b| matches!(b, Block::Literal(text) if *text == line));
    assert!(
        shown,
        "the serve page must show {line:?} as debian/serve.conf has it"
    );
}

#[test]
fn inline_markup() {
    assert_eq!(
        inline("use `--json` here"),
        vec![roman("use "), bold("--json"), roman(" here")]
    );
    assert_eq!(inline("`-q`"), vec![bold("-q")]);
}

#[test]
fn completions_for_three_shells_know_the_flags_and_subcommands() {
    let files = completions(&Cli::command());
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["tcpping-diag.bash", "_tcpping-diag", "tcpping-diag.fish"]
    );
    let cmd = command();
    for (name, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        for (path, _) in commands(&cmd).iter().filter(|(p, _)| !p.is_empty()) {
            assert!(text.contains(path.as_str()), "{name} lacks '{path}'");
        }
        assert!(text.contains("connect-only"), "{name} lacks --connect-only");
    }
}

/// Candidates bash offers for the last of `words`, with the generated script alone (as
/// readline calls the completion function; bash is on every Linux this runs on).
fn bash_complete(words: &[&str]) -> Vec<String> {
    let (_, script) = &completions(&Cli::command())[0];
    let dir = std::env::temp_dir().join(format!(
        "tpd-completion-{}-{}",
        std::process::id(),
        words.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tcpping-diag.bash");
    std::fs::write(&file, script).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(
            r#"source "$1" || exit 3; shift
            fn=$(complete -p tcpping-diag | sed -E 's/.* -F ([^ ]+).*/\1/')
            COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
            COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
            "$fn" tcpping-diag "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\n' "${COMPREPLY[@]}""#,
        )
        .arg("bash")
        .arg(&file)
        .args(words)
        .output()
        .expect("run bash");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn bash_completes_flags_subcommands_and_their_flags() {
    assert_eq!(
        bash_complete(&["tcpping-diag", "--conn"]),
        ["--connect-only"]
    );
    assert_eq!(bash_complete(&["tcpping-diag", "se"]), ["serve"]);
    assert_eq!(
        bash_complete(&["tcpping-diag", "serve", "--loss-m"]),
        ["--loss-mode"]
    );
    assert_eq!(
        bash_complete(&["tcpping-diag", "generate", "co"]),
        ["completions"]
    );
}
