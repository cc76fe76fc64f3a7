//! Man pages and shell completions for the Debian package, generated from the binaries'
//! own command-line definitions, so they cannot drift from `--help`:
//!
//! - `berth-agent`, `berth-executor`, `berth-vol`: clap commands from their libraries;
//!   clap_mangen writes one page per command and subcommand (`berth-agent-serve.8`...),
//!   clap_complete the bash, zsh and fish completions.
//! - `berth-init` parses its own line (tini's options, no clap: PID 1 stays small); its
//!   page is its `-h` texts (tini mode, supervisor mode, `ctl`) set as roff.
//!
//! Section 8: they are system administration commands run as root.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

/// The man section of every page.
pub const SECTION: &str = "8";

/// The clap-defined binaries, by installed name.
pub fn clap_commands() -> Vec<clap::Command> {
    vec![
        berth_agent::cli::Cli::command(),
        berth_executor::cli::Cli::command().name("berth-executor"),
        berth_lvm::cli::Cli::command(),
    ]
}

/// Writes every page and completion under `out` and returns the files written.
pub fn generate(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let man = out.join("man");
    std::fs::create_dir_all(&man).with_context(|| format!("create {}", man.display()))?;
    let mut written = Vec::new();
    for cmd in clap_commands() {
        man_pages(&cmd, &man, &mut written)?;
        for (shell, dir) in [
            (Shell::Bash, "bash"),
            (Shell::Zsh, "zsh"),
            (Shell::Fish, "fish"),
        ] {
            let dir = out.join("completions").join(dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            let name = cmd.get_name().to_string();
            // The names each shell looks up for a command.
            let file = match shell {
                Shell::Zsh => format!("_{name}"),
                Shell::Fish => format!("{name}.fish"),
                _ => name.clone(),
            };
            let path = dir.join(file);
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), name, &mut text);
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
            written.push(path);
        }
    }
    let init = man.join(format!("berth-init.{SECTION}"));
    std::fs::write(&init, init_page()).with_context(|| format!("write {}", init.display()))?;
    written.push(init);
    Ok(written)
}

/// `cmd.SECTION` and one page per subcommand, named `cmd-sub.SECTION` (recursively).
fn man_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let path = dir.join(format!("{}.{SECTION}", cmd.get_name()));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section(SECTION)
        .manual("berth")
        .render(&mut page)
        .with_context(|| format!("render {}", cmd.get_name()))?;
    std::fs::write(&path, page).with_context(|| format!("write {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        // clap takes `'static` names; this tool runs once and exits.
        let name: &'static str = format!("{}-{}", cmd.get_name(), sub.get_name()).leak();
        let bin = format!(
            "{} {}",
            cmd.get_bin_name().unwrap_or(cmd.get_name()),
            sub.get_name()
        );
        man_pages(&sub.clone().name(name).bin_name(bin), dir, written)?;
    }
    Ok(())
}

/// berth-init's page: its three usage texts as preformatted roff.
pub fn init_page() -> String {
    let version = berth_init::cli::version_line(std::ffi::OsStr::new("berth-init"));
    let mut page = format!(
        ".TH BERTH-INIT {SECTION} \"\" \"{}\" berth\n\
         .SH NAME\nberth-init \\- PID 1 for berth containers: reaping, signals, supervision; a drop-in for tini\n",
        roff_escape(&version)
    );
    for (title, text) in [
        ("TINI MODE", berth_init::cli::usage()),
        (
            "SUPERVISOR MODE",
            berth_init::sup_cli::SUP_USAGE.to_string(),
        ),
        ("CTL", berth_init::sup_cli::CTL_USAGE.to_string()),
    ] {
        page.push_str(&format!(".SH {title}\n.nf\n"));
        for line in text.lines() {
            page.push_str(&roff_escape(line));
            page.push('\n');
        }
        page.push_str(".fi\n");
    }
    page
}

/// A text line that roff prints as is: backslashes doubled, a leading `.` or `'` guarded.
fn roff_escape(line: &str) -> String {
    let body = line.replace('\\', "\\e");
    if body.starts_with('.') || body.starts_with('\'') {
        format!("\\&{body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binary_gets_pages_and_completions() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "berth-agent.8",
            "berth-agent-serve.8",
            "berth-executor.8",
            "berth-executor-run.8",
            "berth-vol.8",
            "berth-init.8",
            "berth-agent",
            "_berth-executor",
            "berth-vol.fish",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let serve = std::fs::read_to_string(dir.path().join("man/berth-agent-serve.8")).unwrap();
        assert!(serve.contains("\\-\\-config"), "{serve}");
        let init = std::fs::read_to_string(dir.path().join("man/berth-init.8")).unwrap();
        assert!(init.starts_with(".TH BERTH-INIT 8"), "{init}");
        assert!(
            init.contains("\\-\\-spec") || init.contains("--spec"),
            "{init}"
        );
    }

    #[test]
    fn roff_lines_are_guarded() {
        assert_eq!(roff_escape(".hidden"), "\\&.hidden");
        assert_eq!(roff_escape("a\\b"), "a\\eb");
        assert_eq!(roff_escape("plain"), "plain");
    }
}
