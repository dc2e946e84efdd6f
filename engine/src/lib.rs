//! prtip-engine: prtip's scan engine: targets, permutation, wire formats, probes, pacing, backends and the scan loop.

#![warn(missing_docs)]
