//! prtip-export: prtip's exports: text, JSON lines, nmap XML, greppable, CSV, HTML and PDF, streamed from the scan log.

#![warn(missing_docs)]
