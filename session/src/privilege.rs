//! What this process may do: the one place that checks capabilities.

/// Capability bit of CAP_NET_RAW (raw and packet sockets).
pub const CAP_NET_RAW: u32 = 13;

/// Whether this process holds capability `bit` in its effective set.
pub fn has_capability(bit: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << bit) != 0)
}

/// The message for a missing CAP_NET_RAW.
pub fn privilege_message() -> String {
    "prtip scan -sS sends raw packets and needs CAP_NET_RAW, which this process does not have.\n  \
     Run it as root (sudo prtip scan ...), or grant the capability once:\n    \
     sudo setcap cap_net_raw,cap_net_admin+eip \"$(command -v prtip)\"\n  \
     A connect scan (-sT) needs no privilege."
        .to_string()
}
