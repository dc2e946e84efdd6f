//! Where prtip keeps its files: `~/.prtip` (or `--home` / `PRTIP_HOME`) holds
//! `scans/<id>/` log directories and `history.redb` (or `--history` / `PRTIP_HISTORY`).

use std::path::PathBuf;

/// Resolved locations of prtip's files.
#[derive(Clone, Debug)]
pub struct Paths {
    /// Root directory (`~/.prtip`).
    pub home: PathBuf,
    /// History index file.
    pub history: PathBuf,
}

impl Paths {
    /// From the global flags and environment.
    pub fn from_cli(cli: &crate::Cli) -> Paths {
        let home = cli.home.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"))
                .join(".prtip")
        });
        let history = cli
            .history
            .clone()
            .unwrap_or_else(|| home.join("history.redb"));
        Paths { home, history }
    }

    /// The home must be a directory (or not exist yet: it is created when
    /// first needed). A file there is bad input, said once (exit 2).
    pub fn check(&self) -> anyhow::Result<()> {
        if self.home.exists() && !self.home.is_dir() {
            return Err(anyhow::Error::new(crate::UsageError(format!(
                "--home {}: it is a file, not a directory; give a directory (created if missing)",
                self.home.display()
            ))));
        }
        Ok(())
    }

    /// Directory that holds one directory per scan log.
    pub fn scans_dir(&self) -> PathBuf {
        self.home.join("scans")
    }

    /// The same places, as prtip-session takes them.
    pub fn session_home(&self) -> prtip_session::Home {
        prtip_session::Home {
            history: self.history.clone(),
            scans: self.scans_dir(),
        }
    }
}
