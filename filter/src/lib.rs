//! prtip-filter: prtip's filter expression language over scan results.

#![warn(missing_docs)]
