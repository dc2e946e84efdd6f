//! Bad input, told apart from runtime failures.

/// Bad input from the user (a flag, a spec, a scan that cannot be resumed): the
/// message names the bad value and the way out. A session error whose chain holds
/// a `UsageError` means nothing was sent and nothing was written; the `prtip`
/// binary exits 2 on it.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// An [`anyhow::Error`] holding a [`UsageError`].
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}
