//! Man pages and shell completions, generated from the clap definitions (`Cli::command()`), so
//! they cannot drift from `--help`: `tcpping-diag generate man|completions DIR`, run at
//! packaging time (scripts/build-deb.sh).
//!
//! Every command gets a page: `tcpping-diag(1)` for the ping itself and `tcpping-diag-NAME(1)`
//! for each subcommand (new subcommands are picked up by themselves). A page is clap_mangen's
//! NAME, SYNOPSIS, DESCRIPTION, OPTIONS (and SUBCOMMANDS), then the hand-written sections of
//! [`pages::PAGES`] (verdicts, privileges, exit status, examples, ...), then SEE ALSO listing
//! the other pages. The tests below require examples on every page and check that every
//! example parses with the real command line, so adding a subcommand or a flag means adding
//! its examples to `pages.rs`, nothing else.

mod pages;

use std::io::{self, Write};
use std::path::PathBuf;

use clap::CommandFactory;
use clap_mangen::roff::{bold, roman, Inline, Roff};

use crate::cli::{Cli, GenerateArgs, Generated};
use crate::error::Error;

pub use pages::PAGES;

/// Name of the program, of its main page, and prefix of the subcommands' pages.
pub const BIN: &str = "tcpping-diag";

/// The hand-written part of one man page.
pub struct Page {
    /// The subcommand path, words separated by spaces ("serve"); "" for the main page.
    pub command: &'static str,
    pub sections: &'static [Section],
}

/// One `.SH` section.
pub struct Section {
    /// Upper case, as man pages have them: "EXIT STATUS".
    pub title: &'static str,
    pub blocks: &'static [Block],
}

/// Text in blocks is plain, one paragraph per string; `backquoted` words are set in bold
/// (flags, commands, file names), the rest in roman. The roff crate escapes everything.
pub enum Block {
    /// A paragraph.
    Para(&'static str),
    /// A list of terms, each with its text (`.TP`): verdicts, exit codes, files.
    Items(&'static [(&'static str, &'static str)]),
    /// An example: what it does, then the command line. The tests parse every example's
    /// command line (up to a ` | `) with the real `Cli`.
    Example(&'static str, &'static str),
    /// Lines shown as they are (indented, no filling): output samples, file contents.
    Literal(&'static str),
}

/// Write what `args` asks for; returns the files written.
pub fn generate(args: &GenerateArgs) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| Error::io(format!("create directory {}", args.dir.display()), e))?;
    let files = match args.what {
        Generated::Man => man_pages(),
        Generated::Completions => completions(),
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

/// The command as the man pages see it: clap's own `help` subcommand gets no page (`--help`
/// is in every OPTIONS section). Completions take `Cli::command()` as it is.
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Every visible (sub)command with its path ("" for the top, "serve", "a b" for nested ones).
fn commands(cmd: &clap::Command) -> Vec<(String, clap::Command)> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        out.push((path.to_string(), cmd.clone()));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let p = if path.is_empty() {
                sub.get_name().to_string()
            } else {
                format!("{path} {}", sub.get_name())
            };
            walk(sub, &p, out);
        }
    }
    let mut out = Vec::new();
    walk(cmd, "", &mut out);
    out
}

/// The man page name of a command path: "tcpping-diag", "tcpping-diag-serve".
pub fn page_name(path: &str) -> String {
    std::iter::once(BIN)
        .chain(path.split_whitespace())
        .collect::<Vec<_>>()
        .join("-")
}

/// Every man page as (file name, roff source).
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    let cmd = command();
    let all = commands(&cmd);
    let names: Vec<String> = all.iter().map(|(p, _)| page_name(p)).collect();
    all.iter()
        .map(|(path, c)| {
            let name = page_name(path);
            let hand = PAGES.iter().find(|p| p.command == path.as_str());
            let mut out = Vec::new();
            render_page(&mut out, c, &name, hand, &names).expect("writing to a Vec cannot fail");
            (format!("{name}.1"), out)
        })
        .collect()
}

fn render_page(
    w: &mut dyn Write,
    cmd: &clap::Command,
    name: &str,
    hand: Option<&Page>,
    all_pages: &[String],
) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone())
        .title(name)
        .section("1")
        .source(format!("{BIN} {}", crate::VERSION))
        .manual("tcpping-diag manual");
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(w)?;
    }
    let mut roff = Roff::new();
    for section in hand.map_or(&[][..], |p| p.sections) {
        render_section(&mut roff, section);
    }
    let mut see_also: Vec<Inline> = Vec::new();
    let others = all_pages.iter().filter(|p| p.as_str() != name);
    for (i, page) in others
        .map(String::as_str)
        .chain(["ping(8)", "capabilities(7)", "setcap(8)"])
        .enumerate()
    {
        if i > 0 {
            see_also.push(roman(", "));
        }
        match page.split_once('(') {
            Some((n, sect)) => see_also.extend([bold(n), roman(format!("({sect}"))]),
            None => see_also.extend([bold(page), roman("(1)")]),
        }
    }
    roff.control("SH", ["SEE ALSO"]).text(see_also);
    roff.to_writer(w)
}

fn render_section(roff: &mut Roff, section: &Section) {
    roff.control("SH", [section.title]);
    for block in section.blocks {
        match block {
            Block::Para(text) => {
                roff.control("PP", []).text(inline(text));
            }
            Block::Items(items) => {
                for (term, text) in *items {
                    roff.control("TP", []).text(inline(term)).text(inline(text));
                }
            }
            Block::Example(what, cmdline) => {
                roff.control("PP", []).text(inline(what));
                roff.control("RS", ["4"]).control("nf", []);
                roff.text([bold(*cmdline)]);
                roff.control("fi", []).control("RE", []);
            }
            Block::Literal(text) => {
                roff.control("PP", [])
                    .control("RS", ["4"])
                    .control("nf", []);
                for line in text.lines() {
                    roff.text([roman(line)]);
                }
                roff.control("fi", []).control("RE", []);
            }
        }
    }
}

/// Plain text with `backquoted` parts in bold.
fn inline(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(i, s)| if i % 2 == 1 { bold(s) } else { roman(s) })
        .collect()
}

/// Completion scripts for bash, zsh and fish as (file name, script).
pub fn completions() -> Vec<(String, Vec<u8>)> {
    use clap_complete::{generate, Generator, Shell};
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            let mut cmd = Cli::command();
            let mut out = Vec::new();
            generate(shell, &mut cmd, BIN, &mut out);
            if shell == Shell::Bash {
                out = fix_bash_hyphenated_bin(&out);
            }
            (shell.file_name(BIN), out)
        })
        .collect()
}

/// clap_complete's bash script spells the state of a subcommand two ways when the program's
/// name has a hyphen: `tcpping__diag__subcmd__serve` where it walks the words, and
/// `tcpping__subcmd__diag__subcmd__serve` in the `case` that lists the subcommand's options,
/// so `tcpping-diag serve --<TAB>` completed nothing (clap-rs/clap#6421, open). Spell the
/// labels the way the walk does; once clap fixes it, this changes nothing.
fn fix_bash_hyphenated_bin(script: &[u8]) -> Vec<u8> {
    let wrong = BIN.replace('-', "__subcmd__");
    let right = BIN.replace('-', "__");
    String::from_utf8_lossy(script)
        .replace(&wrong, &right)
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn page_text(name: &str) -> String {
        let (_, bytes) = man_pages()
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
        for (name, bytes) in man_pages() {
            let text = String::from_utf8(bytes).unwrap();
            for line in text.lines().filter(|l| l.starts_with('.')) {
                let req = line[1..].split_whitespace().next().unwrap_or("");
                assert!(
                    [
                        "TH", "SH", "SS", "PP", "TP", "RS", "RE", "nf", "fi", "ie", "el", "IP",
                        "B", "I", "br", "sp", "TQ", "P", "LP"
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
        let files = completions();
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
        let (_, script) = &completions()[0];
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
}
