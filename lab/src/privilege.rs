//! What this process may do: the one place that reads the effective capability
//! set (`CapEff` in `/proc/self/status`) and says, in words, what is missing.
//! It never changes privileges.

use crate::error::LabError;

/// `CAP_NET_ADMIN`: create links, addresses, routes; set network sysctls.
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_NET_RAW`: raw and packet sockets.
pub const CAP_NET_RAW: u32 = 13;
/// `CAP_SYS_ADMIN`: create and enter network namespaces (`ip netns add`, setns).
pub const CAP_SYS_ADMIN: u32 = 21;

/// The effective capability mask of this process.
pub fn effective_caps() -> Result<u64, LabError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| LabError::io("reading /proc/self/status", e))?;
    parse_cap_eff(&status).ok_or_else(|| {
        LabError::Setup("no CapEff line in /proc/self/status; cannot check privileges".into())
    })
}

/// Extract the `CapEff:` mask from the text of a `/proc/<pid>/status` file.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Whether capability number `cap` is in `mask`.
pub fn has_cap(mask: u64, cap: u32) -> bool {
    mask & (1u64 << cap) != 0
}

/// Refuse, naming what is missing, unless the process may build a lab
/// (`CAP_NET_ADMIN` and `CAP_SYS_ADMIN`, i.e. root).
pub fn require_lab_privileges(action: &str) -> Result<(), LabError> {
    check_mask(effective_caps()?, action)
}

fn check_mask(mask: u64, action: &str) -> Result<(), LabError> {
    let missing: Vec<&str> = [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ]
    .iter()
    .filter(|(c, _)| !has_cap(mask, *c))
    .map(|(_, n)| *n)
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(LabError::Privilege(format!(
        "`prtip lab {action}` needs root: network namespaces and veth links need CAP_NET_ADMIN and CAP_SYS_ADMIN, and this process lacks {}; run it as root (sudo prtip lab {action} ...)",
        missing.join(" and ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff_is_parsed_from_status_text() {
        let s = "Name:\tprtip\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\nCapBnd:\t0\n";
        let m = parse_cap_eff(s).unwrap();
        assert!(has_cap(m, CAP_NET_ADMIN) && has_cap(m, CAP_SYS_ADMIN));
        assert_eq!(parse_cap_eff("Name: x\n"), None);
    }

    #[test]
    fn missing_caps_are_named() {
        let e = check_mask(0, "up").unwrap_err();
        assert!(e.is_usage());
        let msg = e.to_string();
        assert!(msg.contains("CAP_NET_ADMIN and CAP_SYS_ADMIN"), "{msg}");
        assert!(msg.contains("sudo prtip lab up"), "{msg}");
        let only_net = 1u64 << CAP_NET_ADMIN;
        let msg = check_mask(only_net, "down").unwrap_err().to_string();
        assert!(msg.contains("lacks CAP_SYS_ADMIN;"), "{msg}");
        check_mask((1 << CAP_NET_ADMIN) | (1 << CAP_SYS_ADMIN), "up").unwrap();
    }
}
