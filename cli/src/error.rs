//! How errors become exit codes: a [`UsageError`] anywhere in the chain is bad
//! input (exit 2), anything else a runtime failure (exit 1).

use std::process::ExitCode;

/// Bad input from the user: the message names the bad value and the way out
/// (prtip-session's, so a session's refusals are bad input too).
pub use prtip_session::UsageError;

/// Print the error (if any) and map it to prtip's exit codes.
pub fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("prtip: {err:#}");
            if err.chain().any(|e| e.is::<UsageError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
