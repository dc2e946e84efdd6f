//! What a lab is made of: names, addresses, ports ([`LabConfig`]), the small value
//! types it needs ([`Ipv4Net`], [`MacAddr`], port lists) with parsers whose errors
//! name the bad value, and the lab's ground truth ([`GroundTruth`]).
//!
//! This module only describes a lab; it never touches the system.

use crate::error::LabError;
use crate::ipv6::Ipv6Net;
use crate::services;
use crate::sparse::{HostTruth, Sparse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

/// Default lab name: namespaces `prtip-scan` / `prtip-tgt`, links `prtip-s0` / `prtip-t0`.
pub const DEFAULT_NAME: &str = "prtip";
/// Default directory that holds one run directory per lab (pid file, log, config).
pub const DEFAULT_RUN_DIR: &str = "/run/prtip-lab";
/// Default open TCP ports: each answers with the banner of the service in
/// [`services::TCP_SERVICES`].
pub const DEFAULT_TCP_PORTS: &[u16] = &[21, 22, 25, 80, 110, 143, 443, 6379, 8080];
/// Default UDP ports with a responder: 7 echo, 53 DNS, 123 NTP.
pub const DEFAULT_UDP_PORTS: &[u16] = &[7, 53, 123];
/// Default accept backlog (and `somaxconn` / `tcp_max_syn_backlog` in the target namespace).
pub const DEFAULT_BACKLOG: u32 = 65535;
/// Longest lab name: the link names `<name>-s0` / `<name>-t0` must fit in 15 bytes.
pub const MAX_NAME_LEN: usize = 12;

/// An IPv4 network in CIDR form (`198.19.0.0/16`); host bits are always zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// A network from its first address and prefix length; refuses set host bits.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Net, LabError> {
        if prefix > 32 {
            return Err(LabError::Invalid(format!(
                "'{addr}/{prefix}': prefix {prefix} is above 32"
            )));
        }
        let net = Ipv4Net { addr, prefix };
        if u32::from(addr) & !net.mask() != 0 {
            let fixed = Ipv4Addr::from(u32::from(addr) & net.mask());
            return Err(LabError::Invalid(format!(
                "'{addr}/{prefix}': host bits are set (did you mean {fixed}/{prefix}?)"
            )));
        }
        Ok(net)
    }

    /// First address of the network.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Prefix length (0..=32).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Netmask as a host-order integer.
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// Number of addresses in the network (2^(32-prefix)).
    pub fn len(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// Always false: a network holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `ip` lies inside the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The `i`-th address of the network (`None` past the end).
    pub fn nth(&self, i: u64) -> Option<Ipv4Addr> {
        (i < self.len()).then(|| Ipv4Addr::from(u32::from(self.addr) + i as u32))
    }

    /// Every address of the network, in order.
    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        (0..self.len()).map(|i| Ipv4Addr::from(u32::from(self.addr) + i as u32))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = LabError;
    fn from_str(s: &str) -> Result<Ipv4Net, LabError> {
        let bad = || {
            LabError::Invalid(format!(
                "'{s}' is not an IPv4 network in CIDR form (for example 198.19.0.0/16)"
            ))
        };
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, p),
            None => (s, "32"),
        };
        let addr: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
            return Err(bad());
        }
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Ipv4Net::new(addr, prefix)
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = LabError;
    fn try_from(s: String) -> Result<Ipv4Net, LabError> {
        s.parse()
    }
}

impl From<Ipv4Net> for String {
    fn from(n: Ipv4Net) -> String {
        n.to_string()
    }
}

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// True for a unicast address (lowest bit of the first octet clear).
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = LabError;
    fn from_str(s: &str) -> Result<MacAddr, LabError> {
        let bad = || {
            LabError::Invalid(format!(
                "'{s}' is not a MAC address (six hex octets, for example 02:70:72:74:00:01)"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut m = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(bad());
            }
            m[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(MacAddr(m))
    }
}

impl TryFrom<String> for MacAddr {
    type Error = LabError;
    fn try_from(s: String) -> Result<MacAddr, LabError> {
        s.parse()
    }
}

impl From<MacAddr> for String {
    fn from(m: MacAddr) -> String {
        m.to_string()
    }
}

/// Parse a port list such as `22,80,8000-8010` (sorted, duplicates removed).
/// `""` and `none` mean no ports. Errors name the bad token.
pub fn parse_ports(s: &str) -> Result<Vec<u16>, LabError> {
    let s = s.trim();
    if s.is_empty() || s.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let port = |tok: &str| -> Result<u16, LabError> {
        let tok = tok.trim();
        if tok.is_empty() || !tok.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LabError::Invalid(format!(
                "'{tok}' is not a port number in '{s}' (use a list like 22,80,8000-8010)"
            )));
        }
        match tok.parse::<u32>() {
            Ok(0) => Err(LabError::Invalid(format!(
                "port 0 is not a valid port in '{s}' (ports are 1-65535)"
            ))),
            Ok(p) if p <= 65535 => Ok(p as u16),
            _ => Err(LabError::Invalid(format!(
                "port {tok} is above 65535 in '{s}'"
            ))),
        }
    };
    let mut set = BTreeSet::new();
    for tok in s.split(',') {
        match tok.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (port(a)?, port(b)?);
                if a > b {
                    return Err(LabError::Invalid(format!(
                        "range '{}' runs backwards in '{s}' (write {b}-{a})",
                        tok.trim()
                    )));
                }
                set.extend(a..=b);
            }
            None => {
                set.insert(port(tok)?);
            }
        }
    }
    Ok(set.into_iter().collect())
}

/// Format a port list compactly (`21-23,80`).
pub fn format_ports(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "none".to_string();
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < ports.len() {
        let start = ports[i];
        let mut end = start;
        while i + 1 < ports.len() && ports[i + 1] == end.wrapping_add(1) && end != u16::MAX {
            i += 1;
            end = ports[i];
        }
        if end == start {
            out.push(start.to_string());
        } else {
            out.push(format!("{start}-{end}"));
        }
        i += 1;
    }
    out.join(",")
}

/// What answers the scanner's probes on the target side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponderKind {
    /// The target namespace's kernel TCP stack and `prtip lab serve`: full
    /// connections, banners, UDP services.
    #[default]
    Kernel,
    /// As `Kernel`, plus an XDP program on the target's veth that answers every
    /// SYN itself (SYN-ACK on the open TCP ports, RST elsewhere) at line rate, so
    /// that benchmarks measure the scanner and not the target's TCP stack.
    /// Connections that complete the handshake get no banner in this mode.
    Xdp,
    /// An XDP program on the target's veth that drops every frame: nothing
    /// answers (send-only benchmarks).
    XdpSink,
}

impl ResponderKind {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponderKind::Kernel => "kernel",
            ResponderKind::Xdp => "xdp",
            ResponderKind::XdpSink => "xdp-sink",
        }
    }
}

impl fmt::Display for ResponderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResponderKind {
    type Err = LabError;
    fn from_str(s: &str) -> Result<ResponderKind, LabError> {
        match s {
            "kernel" => Ok(ResponderKind::Kernel),
            "xdp" => Ok(ResponderKind::Xdp),
            "xdp-sink" | "sink" => Ok(ResponderKind::XdpSink),
            other => Err(LabError::Invalid(format!(
                "unknown responder '{other}': expected kernel, xdp or xdp-sink"
            ))),
        }
    }
}

/// Everything that describes one lab. Two labs with different `name`, `scan_ns`
/// and `tgt_ns` can run side by side (the links and addresses live inside the
/// namespaces, so they may be equal across labs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabConfig {
    /// Lab name: run directory `<run_dir>/<name>/`.
    pub name: String,
    /// Scanner network namespace (only `lo` and `scan_if`, no default route).
    pub scan_ns: String,
    /// Target network namespace (AnyIP for `target_net`, the responder).
    pub tgt_ns: String,
    /// Scanner end of the veth pair.
    pub scan_if: String,
    /// Target end of the veth pair.
    pub tgt_if: String,
    /// MAC of `scan_if`.
    pub scan_mac: MacAddr,
    /// MAC of `tgt_if` (the "router MAC" raw scanners need).
    pub tgt_mac: MacAddr,
    /// Address of `scan_if` (in a /30 with `tgt_ip`).
    pub scan_ip: Ipv4Addr,
    /// Address of `tgt_if`, the gateway to `target_net`.
    pub tgt_ip: Ipv4Addr,
    /// Network every address of which answers (AnyIP in the target namespace).
    pub target_net: Ipv4Net,
    /// Open TCP ports (listeners with banners); every other port answers RST.
    pub tcp_ports: Vec<u16>,
    /// UDP ports with a responder; every other port answers ICMP port unreachable.
    pub udp_ports: Vec<u16>,
    /// TX/RX queues on each veth end (one AF_XDP socket or sender thread per queue).
    pub queues: u32,
    /// Accept backlog per listener and the target namespace's `somaxconn`.
    pub backlog: u32,
    /// Directory holding the run directories of all labs.
    pub run_dir: PathBuf,
    /// The `prtip` binary that runs the responder (`prtip lab serve`). `None`:
    /// `$PRTIP_BIN`, else this executable if it is `prtip`, else `prtip` next to
    /// (or one level above) this executable, as cargo lays out tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responder_exe: Option<PathBuf>,
    /// What answers on the target side. prtip-lab itself always runs the kernel
    /// responder; the XDP kinds are attached by the caller after [`crate::Lab::up`]
    /// (the CLI runs `prtip xdp-hold` and registers it with
    /// [`crate::Lab::adopt_helper`]). Recorded here so status and ground truth know.
    #[serde(default)]
    pub responder: ResponderKind,
    /// IPv6 address of `scan_if` (a /64 with `tgt_ip6`, added with `nodad`).
    #[serde(default = "default_scan_ip6")]
    pub scan_ip6: Ipv6Addr,
    /// IPv6 address of `tgt_if`, the IPv6 gateway to `target_net6`.
    #[serde(default = "default_tgt_ip6")]
    pub tgt_ip6: Ipv6Addr,
    /// IPv6 network every address of which answers (AnyIP, inside 2001:db8::/32);
    /// `None`: no IPv6 target prefix (the link still gets its IPv6 addresses).
    #[serde(default = "default_target_net6")]
    pub target_net6: Option<Ipv6Net>,
    /// A network where only some addresses exist (see [`Sparse`]); `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<Sparse>,
    /// With the XDP responder: only addresses of `target_net` whose index is 1
    /// modulo this answer TCP SYNs (100: 1%); SYNs to the others are dropped.
    /// 1: every address answers. UDP and ICMP still reach the kernel.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub xdp_live_every: u32,
    /// The SYN policer on the target's veth, if one is attached (recorded like
    /// `responder`: the CLI attaches it through `prtip xdp-hold`, tests through
    /// prtip-xdp). Changeable at runtime; this is the rate it was attached with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policer: Option<PolicerSpec>,
    /// The process whose life bounds the lab's, set by [`crate::LabGuard`]:
    /// `prtip lab down --stale` removes labs whose owner is gone (a test killed
    /// before its guard could run). `None` for labs made by `prtip lab up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// A token-bucket SYN policer: `rate` SYNs per second pass on average, at most
/// `burst` in a row; TCP SYNs (IPv4 and IPv6) beyond that are dropped. With a
/// `net`, only the SYNs to that network are policed (one slow /24 in a fast
/// lab); the others pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicerSpec {
    /// Tokens added per second.
    pub rate: u64,
    /// Bucket size (and the tokens it starts with).
    pub burst: u64,
    /// The network whose SYNs are policed (`None`: every SYN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<IpNet>,
}

/// An IPv4 or IPv6 network in CIDR form (`198.19.3.0/24`, `2001:db8:100::/48`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum IpNet {
    /// An IPv4 network.
    V4(Ipv4Net),
    /// An IPv6 network.
    V6(Ipv6Net),
}

impl IpNet {
    /// First address and prefix length.
    pub fn addr_prefix(&self) -> (IpAddr, u8) {
        match self {
            IpNet::V4(n) => (IpAddr::V4(n.addr()), n.prefix()),
            IpNet::V6(n) => (IpAddr::V6(n.addr()), n.prefix()),
        }
    }

    /// Whether `ip` lies inside the network (never across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (IpNet::V4(n), IpAddr::V4(a)) => n.contains(a),
            (IpNet::V6(n), IpAddr::V6(a)) => n.contains(a),
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpNet::V4(n) => n.fmt(f),
            IpNet::V6(n) => n.fmt(f),
        }
    }
}

impl FromStr for IpNet {
    type Err = LabError;
    fn from_str(s: &str) -> Result<IpNet, LabError> {
        if s.contains(':') {
            s.parse().map(IpNet::V6)
        } else {
            s.parse().map(IpNet::V4)
        }
    }
}

impl TryFrom<String> for IpNet {
    type Error = LabError;
    fn try_from(s: String) -> Result<IpNet, LabError> {
        s.parse()
    }
}

impl From<IpNet> for String {
    fn from(n: IpNet) -> String {
        n.to_string()
    }
}

impl PolicerSpec {
    /// Parse `RATE` or `RATE/BURST` (`40000`, `40k/64`); the burst defaults to
    /// rate/100, at least 1. `k` and `M` suffixes multiply by 1000 and 1000000.
    pub fn parse(s: &str) -> Result<PolicerSpec, LabError> {
        let num = |t: &str| -> Result<u64, LabError> {
            let t = t.trim();
            let (digits, mul) = match t.strip_suffix(['k', 'K']) {
                Some(d) => (d, 1000),
                None => match t.strip_suffix('M') {
                    Some(d) => (d, 1_000_000),
                    None => (t, 1),
                },
            };
            digits
                .parse::<u64>()
                .ok()
                .and_then(|v| v.checked_mul(mul))
                .filter(|&v| v <= 1_000_000_000)
                .ok_or_else(|| {
                    LabError::Invalid(format!(
                        "--policer '{s}': '{t}' is not a number of SYNs up to 1000000000 (use RATE or RATE/BURST, for example 40k/400)"
                    ))
                })
        };
        let (rate, burst) = match s.split_once('/') {
            Some((r, b)) => (num(r)?, num(b)?),
            None => {
                let r = num(s)?;
                (r, (r / 100).max(1))
            }
        };
        if burst == 0 {
            return Err(LabError::Invalid(format!(
                "--policer '{s}': the burst must be at least 1"
            )));
        }
        Ok(PolicerSpec {
            rate,
            burst,
            net: None,
        })
    }
}

impl fmt::Display for PolicerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.rate, self.burst)?;
        if let Some(n) = self.net {
            write!(f, " on {n}")?;
        }
        Ok(())
    }
}

fn one() -> u32 {
    1
}
fn is_one(v: &u32) -> bool {
    *v == 1
}

fn default_scan_ip6() -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1)
}
fn default_tgt_ip6() -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 2)
}
/// The default IPv6 target prefix: 2001:db8:100::/116 (4096 addresses).
pub fn default_target_net6() -> Option<Ipv6Net> {
    Some(Ipv6Net::new(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0), 116).expect("valid"))
}

/// A process identified by pid and start time (so a recycled pid is not mistaken for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub start_ticks: u64,
}

impl Default for LabConfig {
    fn default() -> LabConfig {
        LabConfig::named(DEFAULT_NAME)
    }
}

static UNIQUE: AtomicU32 = AtomicU32::new(0);

fn default_queues() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

impl LabConfig {
    /// The default lab with every name derived from `name`: namespaces
    /// `<name>-scan` / `<name>-tgt`, links `<name>-s0` / `<name>-t0`.
    pub fn named(name: &str) -> LabConfig {
        LabConfig {
            name: name.to_string(),
            scan_ns: format!("{name}-scan"),
            tgt_ns: format!("{name}-tgt"),
            scan_if: format!("{name}-s0"),
            tgt_if: format!("{name}-t0"),
            scan_mac: MacAddr([0x02, 0x70, 0x72, 0x74, 0x00, 0x01]),
            tgt_mac: MacAddr([0x02, 0x70, 0x72, 0x74, 0x00, 0x02]),
            scan_ip: Ipv4Addr::new(198, 18, 0, 1),
            tgt_ip: Ipv4Addr::new(198, 18, 0, 2),
            target_net: Ipv4Net {
                addr: Ipv4Addr::new(198, 19, 0, 0),
                prefix: 16,
            },
            tcp_ports: DEFAULT_TCP_PORTS.to_vec(),
            udp_ports: DEFAULT_UDP_PORTS.to_vec(),
            queues: default_queues(),
            backlog: DEFAULT_BACKLOG,
            run_dir: PathBuf::from(DEFAULT_RUN_DIR),
            responder_exe: None,
            responder: ResponderKind::Kernel,
            scan_ip6: default_scan_ip6(),
            tgt_ip6: default_tgt_ip6(),
            target_net6: default_target_net6(),
            sparse: None,
            xdp_live_every: 1,
            policer: None,
            owner: None,
        }
    }

    /// A lab whose name is unique on this machine for this process
    /// (`<prefix><pid><counter>`, at most [`MAX_NAME_LEN`] bytes): for tests that
    /// run labs side by side. `prefix` is cut to 4 bytes.
    pub fn unique(prefix: &str) -> LabConfig {
        let prefix: String = prefix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(4)
            .collect();
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed) % 256;
        let name = format!("{prefix}{:x}{n:02x}", std::process::id());
        let name: String = name.chars().take(MAX_NAME_LEN).collect();
        LabConfig::named(&name)
    }

    /// The run directory of this lab (`<run_dir>/<name>`).
    pub fn lab_dir(&self) -> PathBuf {
        self.run_dir.join(&self.name)
    }

    /// The /30 that joins the two veth ends.
    pub fn link_net(&self) -> Ipv4Net {
        let a = u32::from(self.scan_ip) & 0xffff_fffc;
        Ipv4Net {
            addr: Ipv4Addr::from(a),
            prefix: 30,
        }
    }

    /// Check every field; the error names the bad value and what would be accepted.
    pub fn validate(&self) -> Result<(), LabError> {
        check_name("lab name", &self.name, 64)?;
        check_name("scanner namespace", &self.scan_ns, 200)?;
        check_name("target namespace", &self.tgt_ns, 200)?;
        check_name("scanner link", &self.scan_if, 15)?;
        check_name("target link", &self.tgt_if, 15)?;
        for l in [&self.scan_if, &self.tgt_if] {
            if l == "lo" {
                return Err(LabError::Invalid("a lab link cannot be named 'lo'".into()));
            }
        }
        if self.scan_ns == self.tgt_ns {
            return Err(LabError::Invalid(format!(
                "the scanner and target namespaces must differ (both are '{}')",
                self.scan_ns
            )));
        }
        for (what, m) in [("scanner", self.scan_mac), ("target", self.tgt_mac)] {
            if !m.is_unicast() || m.0 == [0; 6] {
                return Err(LabError::Invalid(format!(
                    "{what} MAC {m} is not a unicast address (clear the lowest bit of the first octet)"
                )));
            }
        }
        if self.scan_mac == self.tgt_mac {
            return Err(LabError::Invalid(format!(
                "the scanner and target MACs must differ (both are {})",
                self.scan_mac
            )));
        }
        let link = self.link_net();
        if !link.contains(self.tgt_ip) {
            return Err(LabError::Invalid(format!(
                "scanner address {} and target address {} must share one /30 (for example 198.18.0.1 and 198.18.0.2)",
                self.scan_ip, self.tgt_ip
            )));
        }
        let first = u32::from(link.addr);
        for (what, ip) in [("scanner", self.scan_ip), ("target", self.tgt_ip)] {
            let v = u32::from(ip);
            if !link.contains(ip) || v == first || v == first + 3 {
                return Err(LabError::Invalid(format!(
                    "{what} address {ip} must be a host address of the /30 {link} shared by both ends"
                )));
            }
        }
        if self.scan_ip == self.tgt_ip {
            return Err(LabError::Invalid(format!(
                "the scanner and target addresses must differ (both are {})",
                self.scan_ip
            )));
        }
        if self.target_net.prefix < 8 {
            return Err(LabError::Invalid(format!(
                "target network {} is too large (use a prefix of /8 or longer)",
                self.target_net
            )));
        }
        if self.target_net.overlaps(&link) {
            return Err(LabError::Invalid(format!(
                "target network {} overlaps the link network {link}",
                self.target_net
            )));
        }
        for (what, ip) in [("target network", self.target_net.addr)] {
            if ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() || ip.is_unspecified() {
                return Err(LabError::Invalid(format!(
                    "{what} {} is not a unicast network",
                    self.target_net
                )));
            }
        }
        if self.queues == 0 || self.queues > 256 {
            return Err(LabError::Invalid(format!(
                "queues {} is out of range (1-256)",
                self.queues
            )));
        }
        if self.backlog == 0 || self.backlog > 1 << 20 {
            return Err(LabError::Invalid(format!(
                "backlog {} is out of range (1-1048576)",
                self.backlog
            )));
        }
        self.validate_ipv6()?;
        if let Some(sp) = &self.sparse {
            sp.validate()?;
            if let Some(n) = sp.net4 {
                for (what, other) in [("target network", self.target_net), ("link network", link)] {
                    if n.overlaps(&other) {
                        return Err(LabError::Invalid(format!(
                            "--sparse-net {n} overlaps the {what} {other}"
                        )));
                    }
                }
            }
            if let (Some(n), Some(t)) = (sp.net6, self.target_net6) {
                if n.overlaps(&t) {
                    return Err(LabError::Invalid(format!(
                        "--sparse-net6 {n} overlaps --target-net6 {t}"
                    )));
                }
            }
        }
        if self.xdp_live_every == 0
            || (self.xdp_live_every > 1 && self.responder != ResponderKind::Xdp)
        {
            return Err(LabError::Invalid(format!(
                "--xdp-live-every {} needs --responder xdp and a value of 1 or more",
                self.xdp_live_every
            )));
        }
        if let Some(p) = self.policer {
            if self.responder != ResponderKind::Kernel {
                return Err(LabError::Invalid(format!(
                    "--policer {p} needs --responder kernel (the policer and the {} responder both need the target's veth)",
                    self.responder
                )));
            }
        }
        for (what, ports) in [("TCP", &self.tcp_ports), ("UDP", &self.udp_ports)] {
            if ports.contains(&0) {
                return Err(LabError::Invalid(format!(
                    "{what} port 0 is not a valid port (ports are 1-65535)"
                )));
            }
        }
        Ok(())
    }

    fn validate_ipv6(&self) -> Result<(), LabError> {
        let link = self.link_net6();
        for (what, ip) in [("--scan-ip6", self.scan_ip6), ("--tgt-ip6", self.tgt_ip6)] {
            if !crate::ipv6::DOC_PREFIX.contains(ip) {
                return Err(LabError::Invalid(format!(
                    "{what} {ip} is outside the documentation prefix 2001:db8::/32"
                )));
            }
        }
        if !link.contains(self.tgt_ip6) || self.scan_ip6 == self.tgt_ip6 {
            return Err(LabError::Invalid(format!(
                "--scan-ip6 {} and --tgt-ip6 {} must be two different addresses of one /64 (for example 2001:db8:0:1::1 and 2001:db8:0:1::2)",
                self.scan_ip6, self.tgt_ip6
            )));
        }
        if let Some(n) = self.target_net6 {
            n.check_documentation("--target-net6")?;
            if n.prefix() < 96 {
                return Err(LabError::Invalid(format!(
                    "--target-net6 {n} is too large (use a prefix of /96 or longer)"
                )));
            }
            if n.overlaps(&link) {
                return Err(LabError::Invalid(format!(
                    "--target-net6 {n} overlaps the link network {link}"
                )));
            }
        }
        Ok(())
    }

    /// The /64 that joins the two veth ends over IPv6.
    pub fn link_net6(&self) -> Ipv6Net {
        let a = u128::from(self.scan_ip6) & (u128::MAX << 64);
        Ipv6Net::new(Ipv6Addr::from(a), 64).expect("host bits cleared")
    }

    /// What any correct scan of this lab must find.
    pub fn ground_truth(&self) -> GroundTruth {
        GroundTruth {
            target_net6: self.target_net6,
            sparse: self.sparse.clone(),
            tcp_live_every: self.xdp_live_every,
            target_net: self.target_net,
            tcp_open: self.tcp_ports.iter().copied().collect(),
            udp_open: self.udp_ports.iter().copied().collect(),
            answers: self.responder != ResponderKind::XdpSink,
        }
    }
}

/// Check a lab name alone (before it is used to find the lab's run directory).
pub fn validate_name(name: &str) -> Result<(), LabError> {
    check_name("lab name", name, 64)
}

fn check_name(what: &str, v: &str, max: usize) -> Result<(), LabError> {
    let ok_chars = v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if v.is_empty() || v.len() > max || !ok_chars || v.starts_with('.') || v.starts_with('-') {
        return Err(LabError::Invalid(format!(
            "{what} '{v}' is not valid (1-{max} characters from a-z A-Z 0-9 . _ -, not starting with . or -)"
        )));
    }
    Ok(())
}

/// A lab's ground truth: every address of `target_net` (and `target_net6`)
/// answers the same way; in the sparse network only the live addresses do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Every address of this IPv6 network answers like those of `target_net`.
    #[serde(default)]
    pub target_net6: Option<Ipv6Net>,
    /// The sparse network, if the lab has one.
    #[serde(default)]
    pub sparse: Option<Sparse>,
    /// Only addresses of `target_net` whose index is 1 modulo this answer TCP
    /// SYNs (the XDP responder's sparse mode); the others are silent to TCP.
    #[serde(default = "one")]
    pub tcp_live_every: u32,
    /// Every address of this network answers.
    pub target_net: Ipv4Net,
    /// TCP ports that answer SYN-ACK (and a banner); all others RST.
    pub tcp_open: BTreeSet<u16>,
    /// UDP ports that answer; all others ICMP port unreachable.
    pub udp_open: BTreeSet<u16>,
    /// False for a send-only sink: nothing answers at all (every probe is lost).
    pub answers: bool,
}

/// Transport protocol of a ground-truth question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// What a probe of one port gets back, by the lab's construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortTruth {
    /// SYN-ACK (TCP) or a UDP reply.
    Open,
    /// RST (TCP) or ICMP port unreachable (UDP).
    Closed,
    /// Nothing comes back (a silent sparse address, or the XDP sink).
    Silent,
    /// ICMP host unreachable / ICMPv6 no route (an unreachable sparse address).
    HostUnreachable,
    /// The scanner namespace has no route: the probe never leaves.
    NoRoute,
}

impl GroundTruth {
    /// Whether `addr:port` is open for `proto` (IPv4; see [`is_open_at`](Self::is_open_at)).
    pub fn is_open(&self, proto: Proto, addr: Ipv4Addr, port: u16) -> bool {
        self.is_open_at(proto, IpAddr::V4(addr), port)
    }

    /// Whether `addr:port` is open for `proto`, for either family.
    pub fn is_open_at(&self, proto: Proto, addr: IpAddr, port: u16) -> bool {
        self.port(proto, addr, port) == PortTruth::Open
    }

    /// What the lab does with `addr` as a host: `Up` for every address of the
    /// target networks and the live sparse addresses.
    pub fn host(&self, addr: IpAddr) -> HostTruth {
        let in_target = match addr {
            IpAddr::V4(a) => self.target_net.contains(a),
            IpAddr::V6(a) => self.target_net6.is_some_and(|n| n.contains(a)),
        };
        if in_target {
            return if self.answers {
                HostTruth::Up
            } else {
                HostTruth::Silent
            };
        }
        match self.sparse.as_ref().and_then(|s| s.host(addr)) {
            Some(HostTruth::Up) if !self.answers => HostTruth::Silent,
            Some(h) => h,
            None => HostTruth::NoRoute,
        }
    }

    /// What a `proto` probe of `addr:port` gets back.
    pub fn port(&self, proto: Proto, addr: IpAddr, port: u16) -> PortTruth {
        match self.host(addr) {
            HostTruth::Up if proto == Proto::Tcp && !self.tcp_live(addr) => PortTruth::Silent,
            HostTruth::Up => {
                let open = match proto {
                    Proto::Tcp => self.tcp_open.contains(&port),
                    Proto::Udp => self.udp_open.contains(&port),
                };
                if open {
                    PortTruth::Open
                } else {
                    PortTruth::Closed
                }
            }
            HostTruth::Silent => PortTruth::Silent,
            HostTruth::Unreachable => PortTruth::HostUnreachable,
            HostTruth::NoRoute => PortTruth::NoRoute,
        }
    }

    /// Whether `addr` answers TCP SYNs under the XDP responder's sparse mode
    /// (always true outside `target_net` or with `tcp_live_every` 1).
    pub fn tcp_live(&self, addr: IpAddr) -> bool {
        let n = self.tcp_live_every;
        match addr {
            IpAddr::V4(a) if n > 1 && self.target_net.contains(a) => {
                (u32::from(a) - u32::from(self.target_net.addr())) % n == 1
            }
            _ => true,
        }
    }

    /// The live addresses of the sparse network (IPv4 first; empty without one).
    pub fn sparse_live(&self) -> Vec<IpAddr> {
        self.sparse.as_ref().map(Sparse::live).unwrap_or_default()
    }

    /// Open `(address, port)` pairs of a scan of `targets` × `ports`, in
    /// (address, port) order, without materialising the set.
    pub fn open_endpoints<'a>(
        &'a self,
        proto: Proto,
        targets: &'a Ipv4Net,
        ports: &'a [u16],
    ) -> impl Iterator<Item = (Ipv4Addr, u16)> + 'a {
        let mut ports: Vec<u16> = ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        targets.iter().flat_map(move |a| {
            let open: Vec<(Ipv4Addr, u16)> = ports
                .iter()
                .filter(|&&p| self.is_open(proto, a, p))
                .map(|&p| (a, p))
                .collect();
            open
        })
    }

    /// How many endpoints of `targets` × `ports` are open (and how many closed).
    pub fn count(&self, proto: Proto, targets: &Ipv4Net, ports: &[u16]) -> (u64, u64) {
        let mut ports: Vec<u16> = ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        let open_set = match proto {
            Proto::Tcp => &self.tcp_open,
            Proto::Udp => &self.udp_open,
        };
        let open_ports = if self.answers {
            ports.iter().filter(|p| open_set.contains(p)).count() as u64
        } else {
            0
        };
        let inside = targets
            .iter()
            .filter(|a| self.target_net.contains(*a))
            .count() as u64;
        let total = targets.len() * ports.len() as u64;
        let open = inside * open_ports;
        (open, total - open)
    }
}

impl fmt::Display for GroundTruth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.answers {
            return write!(
                f,
                "nothing answers: the target's veth drops every frame (XDP sink); {} addresses",
                self.target_net.len()
            );
        }
        let tcp: Vec<u16> = self.tcp_open.iter().copied().collect();
        let udp: Vec<u16> = self.udp_open.iter().copied().collect();
        write!(
            f,
            "every address of {} ({}) answers: TCP open {} (all other TCP ports RST), UDP open {} (all other UDP ports ICMP port unreachable)",
            self.target_net,
            self.target_net.len(),
            format_ports(&tcp),
            format_ports(&udp)
        )?;
        if let Some(n) = self.target_net6 {
            write!(f, "; the same on every address of {n} ({})", n.len())?;
        }
        if let Some(s) = &self.sparse {
            write!(f, "; sparse {s}")?;
        }
        Ok(())
    }
}

/// Names of the services behind the open ports, for messages (`22/ssh`).
pub fn describe_ports(proto: Proto, ports: &[u16]) -> String {
    ports
        .iter()
        .map(|&p| {
            let name = match proto {
                Proto::Tcp => services::tcp_service(p).map(|s| s.name),
                Proto::Udp => services::udp_service(p).map(|s| s.name),
            };
            match name {
                Some(n) => format!("{p}/{n}"),
                None => p.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_lists_ranges_and_name_bad_tokens() {
        assert_eq!(
            parse_ports("80,22,22,8000-8002").unwrap(),
            vec![22, 80, 8000, 8001, 8002]
        );
        assert_eq!(parse_ports("none").unwrap(), Vec::<u16>::new());
        assert_eq!(parse_ports("").unwrap(), Vec::<u16>::new());
        let e = parse_ports("22,99999").unwrap_err().to_string();
        assert!(e.contains("99999") && e.contains("above 65535"), "{e}");
        let e = parse_ports("22,ssh").unwrap_err().to_string();
        assert!(e.contains("'ssh'"), "{e}");
        let e = parse_ports("0").unwrap_err().to_string();
        assert!(e.contains("port 0"), "{e}");
        let e = parse_ports("90-80").unwrap_err().to_string();
        assert!(e.contains("'90-80'"), "{e}");
        assert!(parse_ports("22,,80").is_err());
    }

    #[test]
    fn ports_format_compactly() {
        assert_eq!(format_ports(&[21, 22, 23, 80, 65535]), "21-23,80,65535");
        assert_eq!(format_ports(&[]), "none");
    }

    #[test]
    fn cidr_parses_and_names_bad_values() {
        let n: Ipv4Net = "198.19.0.0/16".parse().unwrap();
        assert_eq!(n.len(), 65536);
        assert!(n.contains("198.19.255.255".parse().unwrap()));
        assert!(!n.contains("198.20.0.0".parse().unwrap()));
        assert_eq!(n.nth(65535), Some("198.19.255.255".parse().unwrap()));
        assert_eq!(n.nth(65536), None);
        assert_eq!("10.0.0.1".parse::<Ipv4Net>().unwrap().len(), 1);
        let e = "198.19.0.0/33".parse::<Ipv4Net>().unwrap_err().to_string();
        assert!(e.contains("198.19.0.0/33") && e.contains("above 32"), "{e}");
        let e = "198.19.1.0/16".parse::<Ipv4Net>().unwrap_err().to_string();
        assert!(e.contains("198.19.0.0/16"), "{e}");
        let e = "198.19.0/16".parse::<Ipv4Net>().unwrap_err().to_string();
        assert!(e.contains("'198.19.0/16'"), "{e}");
        assert!("198.19.0.0/".parse::<Ipv4Net>().is_err());
        assert!("198.19.0.0/+8".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn mac_parses_and_prints() {
        let m: MacAddr = "02:70:72:74:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "02:70:72:74:00:01");
        assert!(m.is_unicast());
        assert!(!"03:00:00:00:00:01".parse::<MacAddr>().unwrap().is_unicast());
        assert!("02:70:72:74:00".parse::<MacAddr>().is_err());
        assert!("02:70:72:74:00:zz".parse::<MacAddr>().is_err());
    }

    #[test]
    fn default_config_matches_the_contract() {
        let c = LabConfig::default();
        assert_eq!(c.scan_ns, "prtip-scan");
        assert_eq!(c.tgt_ns, "prtip-tgt");
        assert_eq!(c.scan_if, "prtip-s0");
        assert_eq!(c.tgt_if, "prtip-t0");
        assert_eq!(c.target_net.to_string(), "198.19.0.0/16");
        assert_eq!(c.link_net().to_string(), "198.18.0.0/30");
        c.validate().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: LabConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unique_names_fit_link_names_and_differ() {
        let a = LabConfig::unique("test");
        let b = LabConfig::unique("test");
        assert_ne!(a.name, b.name);
        assert!(a.name.len() <= MAX_NAME_LEN);
        a.validate().unwrap();
    }

    #[test]
    fn validate_names_the_bad_value() {
        let c = LabConfig {
            scan_if: "much-too-long-name".into(),
            ..LabConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("much-too-long-name"));
        let c = LabConfig {
            target_net: "198.18.0.0/24".parse().unwrap(),
            ..LabConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("overlaps"));
        let c = LabConfig {
            scan_ip: "198.18.0.3".parse().unwrap(),
            ..LabConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("198.18.0.3"));
        let c = LabConfig {
            scan_ns: "a/b".into(),
            ..LabConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("'a/b'"));
    }

    #[test]
    fn ground_truth_counts_and_lists() {
        let c = LabConfig {
            tcp_ports: vec![80, 8080],
            ..LabConfig::default()
        };
        let g = c.ground_truth();
        let net: Ipv4Net = "198.19.0.0/16".parse().unwrap();
        assert_eq!(
            g.count(Proto::Tcp, &net, &[80, 8080, 22, 443]),
            (131072, 131072)
        );
        let small: Ipv4Net = "198.19.0.0/30".parse().unwrap();
        let open: Vec<_> = g.open_endpoints(Proto::Tcp, &small, &[22, 80]).collect();
        assert_eq!(open.len(), 4);
        assert_eq!(open[0], ("198.19.0.0".parse().unwrap(), 80));
        assert!(!g.is_open(Proto::Tcp, "198.20.0.1".parse().unwrap(), 80));
        assert!(g.is_open(Proto::Udp, "198.19.3.4".parse().unwrap(), 53));
        assert!(g.to_string().contains("TCP open 80,8080"));
        let sink = LabConfig {
            responder: ResponderKind::XdpSink,
            ..c
        }
        .ground_truth();
        assert_eq!(sink.count(Proto::Tcp, &net, &[80, 22]), (0, 131072));
        assert!(!sink.is_open(Proto::Tcp, "198.19.0.1".parse().unwrap(), 80));
        assert!(sink.to_string().starts_with("nothing answers"));
    }

    #[test]
    fn responder_kinds_parse_and_old_configs_default_to_kernel() {
        assert_eq!("xdp".parse::<ResponderKind>().unwrap(), ResponderKind::Xdp);
        assert_eq!(
            "xdp-sink".parse::<ResponderKind>().unwrap(),
            ResponderKind::XdpSink
        );
        let e = "ebpf".parse::<ResponderKind>().unwrap_err().to_string();
        assert!(e.contains("'ebpf'"), "{e}");
        let mut v = serde_json::to_value(LabConfig::default()).unwrap();
        v.as_object_mut().unwrap().remove("responder");
        let c: LabConfig = serde_json::from_value(v).unwrap();
        assert_eq!(c.responder, ResponderKind::Kernel);
    }
}
