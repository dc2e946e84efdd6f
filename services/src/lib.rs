//! prtip-services: prtip's service detection: probe database, banner matching, version extraction, UDP payloads.

#![warn(missing_docs)]
