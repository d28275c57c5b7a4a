//! Man pages and shell completions, generated from the clap definitions handed in
//! (`Cli::command()`, by `cmd/generate.rs`), so they cannot drift from `--help`: `tcpping-diag
//! generate man|completions DIR`, run at packaging time (scripts/build-deb.sh).
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

use clap_mangen::roff::{bold, roman, Inline, Roff};

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

/// The command as the man pages see it: clap's own `help` subcommand gets no page (`--help`
/// is in every OPTIONS section). Completions take the command as it is.
fn for_pages(cmd: clap::Command) -> clap::Command {
    let mut cmd = cmd.disable_help_subcommand(true);
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

/// Every man page of `cmd` (the whole command line, `Cli::command()`) as (file name, roff
/// source).
pub fn man_pages(cmd: clap::Command) -> Vec<(String, Vec<u8>)> {
    let cmd = for_pages(cmd);
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

/// Completion scripts of `cmd` (the whole command line, `Cli::command()`) for bash, zsh and
/// fish as (file name, script).
pub fn completions(cmd: &clap::Command) -> Vec<(String, Vec<u8>)> {
    use clap_complete::{generate, Generator, Shell};
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            let mut cmd = cmd.clone();
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
mod tests;
