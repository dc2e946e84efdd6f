//! prtip-lab: prtip's test lab: network namespaces, a veth pair and a target that answers for a whole network.

#![warn(missing_docs)]
