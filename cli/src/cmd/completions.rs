//! `prtip completions SHELL` and `prtip man`: shell completion scripts and man pages,
//! generated from the same clap definitions as `--help` (clap_complete, clap_mangen),
//! so they never drift from the flags. `./dev install` writes them where bash-completion,
//! zsh, fish and man look.
//!
//! Owns: rendering those files. Never scans, never reads logs.

use anyhow::Context;
use clap::CommandFactory;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `prtip completions`.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// The shells prtip writes completions for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    /// bash (bash-completion: /usr/share/bash-completion/completions/prtip).
    Bash,
    /// zsh (a `_prtip` file on $fpath).
    Zsh,
    /// fish (~/.config/fish/completions/prtip.fish or /usr/share/fish/vendor_completions.d).
    Fish,
}

/// `prtip man`.
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write prtip.1 and one prtip-SUBCOMMAND.1 per subcommand into DIR instead of
    /// printing prtip.1 to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Print the completion script for `args.shell` to stdout.
pub fn run_completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::Cli::command();
    let mut buf = Vec::new();
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "prtip", &mut buf);
    std::io::stdout()
        .lock()
        .write_all(&buf)
        .context("writing the completion script to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Print prtip.1 to stdout, or write every page into `args.dir`.
pub fn run_man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let cmd = crate::Cli::command();
    match args.dir {
        None => {
            let page = render_page(cmd, "prtip")?;
            std::io::stdout()
                .lock()
                .write_all(&page)
                .context("writing the man page to stdout")?;
        }
        Some(dir) => write_pages(cmd, &dir)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn render_page(cmd: clap::Command, title: &str) -> anyhow::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .title(title.to_uppercase())
        .render(&mut page)
        .context("rendering the man page")?;
    Ok(page)
}

/// prtip.1, then prtip-scan.1, prtip-export.1, … (hidden subcommands left out).
fn write_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating --dir {}", dir.display()))?;
    let cmd = cmd.disable_help_subcommand(true);
    let mut pages = vec![("prtip".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("prtip-{}", sub.get_name());
        let bin = format!("prtip {}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name).bin_name(bin)));
    }
    for (name, page_cmd) in pages {
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, render_page(page_cmd, &name)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
