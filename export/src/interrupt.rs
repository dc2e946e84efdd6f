//! Ctrl-C during an export: a process-wide flag set by SIGINT.
//!
//! [`install`] registers a SIGINT handler (signal-hook, async-signal-safe: it only
//! stores `true` into an atomic) that sets [`flag`]; the export loop checks the flag
//! between rows and aborts, dropping its temporary files. This module never touches
//! files.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The process-wide interrupt flag (false until SIGINT arrives after [`install`]).
pub fn flag() -> &'static AtomicBool {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Route SIGINT to [`flag`] instead of killing the process. Idempotent.
pub fn install() -> std::io::Result<()> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    flag();
    let arc = FLAG.get().expect("initialised above").clone();
    signal_hook::flag::register(signal_hook::consts::SIGINT, arc)?;
    let _ = INSTALLED.set(());
    Ok(())
}

/// Whether SIGINT arrived.
pub fn requested() -> bool {
    flag().load(Ordering::Relaxed)
}
