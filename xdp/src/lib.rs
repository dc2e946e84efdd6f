//! prtip-xdp: prtip's AF_XDP backend and the XDP programs (scanner filter, lab responder, sink).

#![warn(missing_docs)]
