//! How errors become exit codes: a [`UsageError`] anywhere in the chain is bad
//! input (exit 2), anything else a runtime failure (exit 1).

use std::process::ExitCode;

/// Bad input from the user: the message names the bad value and the way out
/// (prtip-session's, so a session's refusals are bad input too).
pub use prtip_session::UsageError;

/// Print the error (if any) and map it to prtip's exit codes. A closed pipe on
/// stdout (`prtip export ... | head`) is not an error: exit 0, nothing printed.
pub fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("prtip: {}", message(&err));
            if err.chain().any(|e| e.is::<UsageError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// The error and its causes, each printed once: many errors already include
/// their source in their own text (`cannot write {path}: {source}`), and
/// `{:#}` then printed it again ("Permission denied (os error 13): Permission
/// denied (os error 13)").
pub fn message(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}

/// Whether the error comes from writing to a pipe whose reader has gone.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write the export to {path}: {source}")]
    struct Wrapped {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        let e = anyhow::Error::new(Wrapped {
            path: "/x".into(),
            source: io,
        })
        .context("export failed");
        assert_eq!(
            message(&e),
            "export failed: cannot write the export to /x: Permission denied (os error 13)"
        );
        let plain = anyhow::anyhow!("one").context("two");
        assert_eq!(message(&plain), "two: one");
    }

    #[test]
    fn a_closed_pipe_is_not_an_error() {
        let e = anyhow::Error::new(Wrapped {
            path: "-".into(),
            source: std::io::Error::from(std::io::ErrorKind::BrokenPipe),
        });
        assert!(is_broken_pipe(&e));
        assert_eq!(exit_code(Err(e)), ExitCode::SUCCESS);
        let other = anyhow::anyhow!("disk full");
        assert!(!is_broken_pipe(&other));
    }
}
