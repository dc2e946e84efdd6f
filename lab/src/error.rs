//! The lab's one error type. [`LabError::is_usage`] tells callers which errors
//! are the user's to fix (bad value, missing privilege: exit code 2).

/// Everything that can go wrong while describing, building or removing a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A bad configuration value; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// The process lacks root / the capabilities a lab needs.
    #[error("{0}")]
    Privilege(String),
    /// An external command (`ip`) failed.
    #[error("`{cmd}` failed: {detail}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its standard error, or why it could not run.
        detail: String,
    },
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The lab came up wrong (unsafe scanner namespace, responder did not start, ...).
    #[error("{0}")]
    Setup(String),
}

impl LabError {
    /// True when the user must change the input or the privileges (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, LabError::Invalid(_) | LabError::Privilege(_))
    }

    /// Wrap an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> LabError {
        LabError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = LabError> = std::result::Result<T, E>;
