//! The event schema: every fact of a scan is one of these, appended to the log.
//!
//! This module owns the types that cross the engine/store boundary and nothing
//! else: the engine builds events and pushes them into an [`EventSink`]; the store
//! frames, checksums and persists them; projections read them back zero-copy as
//! `Archived*` types (rkyv). It never touches files, sockets or rendering.
//!
//! Compatibility: the schema version is [`SCHEMA_VERSION`]; every segment header
//! carries it. Adding a variant at the end of [`Event`] does not change the
//! version; anything else does (store/FORMAT.md, "Event schema versions", says
//! what this prtip does with logs of other versions).

use rkyv::{Archive, Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Version of the event schema written into every segment header.
///
/// 2: the typed [`ScanSpec`] (one rate in milli-probes per second, the connect,
/// detection and AF_XDP settings as fields; schema 1 kept them as JSON in a string).
pub const SCHEMA_VERSION: u32 = 2;

/// An IPv4 or IPv6 address in 16 bytes; IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`).
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash))]
pub struct Addr(pub [u8; 16]);

impl Addr {
    /// The address as a std [`IpAddr`] (IPv4-mapped addresses come back as IPv4).
    pub fn ip(&self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }
    /// The IPv4 address, if this is one.
    pub fn v4(&self) -> Option<Ipv4Addr> {
        Ipv6Addr::from(self.0).to_ipv4_mapped()
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => v4.into(),
            IpAddr::V6(v6) => Addr(v6.octets()),
        }
    }
}
impl From<Ipv4Addr> for Addr {
    fn from(v4: Ipv4Addr) -> Self {
        Addr(v4.to_ipv6_mapped().octets())
    }
}
impl From<&ArchivedAddr> for Addr {
    fn from(a: &ArchivedAddr) -> Self {
        Addr(a.0)
    }
}
impl ArchivedAddr {
    /// The archived address as a std [`IpAddr`].
    pub fn ip(&self) -> IpAddr {
        Addr(self.0).ip()
    }
}
impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}
impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}

/// Transport protocol of a probed port.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Clone, Copy))]
#[repr(u8)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// Not a port: the host itself. A [`Reply`] with this protocol (and port 0)
    /// is a host discovery result (`-sn`): state [`PortState::Open`] = the host is
    /// up, [`PortState::Filtered`] = down; the reason says what answered.
    Host,
}

impl Protocol {
    /// Lower-case name as nmap prints it (`tcp`, `udp`; `host` for a host result).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Host => "host",
        }
    }
}
impl From<&ArchivedProtocol> for Protocol {
    fn from(p: &ArchivedProtocol) -> Self {
        match p {
            ArchivedProtocol::Tcp => Protocol::Tcp,
            ArchivedProtocol::Udp => Protocol::Udp,
            ArchivedProtocol::Host => Protocol::Host,
        }
    }
}

/// State of a port, with nmap's meaning.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Clone, Copy))]
#[repr(u8)]
pub enum PortState {
    /// Something answered that accepts connections (SYN-ACK, UDP reply, connect ok).
    Open,
    /// The host answered that nothing listens (RST, ICMP port unreachable, refused).
    Closed,
    /// No answer after retries, or an ICMP error other than port unreachable.
    Filtered,
    /// UDP silence: open or filtered, cannot tell.
    OpenFiltered,
    /// Reachable, open or closed cannot tell (an RST to an ACK probe, `-sA`).
    Unfiltered,
}

impl PortState {
    /// Name as nmap prints it (`open`, `closed`, `filtered`, `open|filtered`,
    /// `unfiltered`).
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::OpenFiltered => "open|filtered",
            PortState::Unfiltered => "unfiltered",
        }
    }
}
impl From<&ArchivedPortState> for PortState {
    fn from(s: &ArchivedPortState) -> Self {
        match s {
            ArchivedPortState::Open => PortState::Open,
            ArchivedPortState::Closed => PortState::Closed,
            ArchivedPortState::Filtered => PortState::Filtered,
            ArchivedPortState::OpenFiltered => PortState::OpenFiltered,
            ArchivedPortState::Unfiltered => PortState::Unfiltered,
        }
    }
}

/// Why a port got its state (nmap's `reason` attribute).
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Clone, Copy))]
#[repr(u8)]
pub enum Reason {
    /// TCP SYN-ACK.
    SynAck,
    /// TCP RST.
    Reset,
    /// ICMP destination unreachable (code kept in [`Reply::icmp_code`]).
    IcmpUnreachable,
    /// ICMP port unreachable (UDP closed).
    PortUnreachable,
    /// A UDP datagram came back.
    UdpResponse,
    /// No reply after all retries.
    NoResponse,
    /// connect() completed.
    Connected,
    /// connect() was refused.
    ConnRefused,
    /// ICMP (or ICMPv6) echo reply: a host is up (`-PE`).
    EchoReply,
    /// ICMP timestamp reply: a host is up (`-PP`).
    TimestampReply,
    /// ICMP address mask reply: a host is up (`-PM`).
    AddressMaskReply,
    /// ARP reply: a host on the link is up (`-PR`).
    ArpResponse,
    /// NDP neighbour advertisement: a host on the link is up (IPv6 `-PR`).
    NdResponse,
}

impl Reason {
    /// Name as nmap prints it in `reason="..."`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SynAck => "syn-ack",
            Reason::Reset => "reset",
            Reason::IcmpUnreachable => "host-unreach",
            Reason::PortUnreachable => "port-unreach",
            Reason::UdpResponse => "udp-response",
            Reason::NoResponse => "no-response",
            Reason::Connected => "syn-ack",
            Reason::ConnRefused => "conn-refused",
            Reason::EchoReply => "echo-reply",
            Reason::TimestampReply => "timestamp-reply",
            Reason::AddressMaskReply => "addressmask-reply",
            Reason::ArpResponse => "arp-response",
            Reason::NdResponse => "nd-response",
        }
    }
}
impl From<&ArchivedReason> for Reason {
    fn from(r: &ArchivedReason) -> Self {
        match r {
            ArchivedReason::SynAck => Reason::SynAck,
            ArchivedReason::Reset => Reason::Reset,
            ArchivedReason::IcmpUnreachable => Reason::IcmpUnreachable,
            ArchivedReason::PortUnreachable => Reason::PortUnreachable,
            ArchivedReason::UdpResponse => Reason::UdpResponse,
            ArchivedReason::NoResponse => Reason::NoResponse,
            ArchivedReason::Connected => Reason::Connected,
            ArchivedReason::ConnRefused => Reason::ConnRefused,
            ArchivedReason::EchoReply => Reason::EchoReply,
            ArchivedReason::TimestampReply => Reason::TimestampReply,
            ArchivedReason::AddressMaskReply => Reason::AddressMaskReply,
            ArchivedReason::ArpResponse => Reason::ArpResponse,
            ArchivedReason::NdResponse => Reason::NdResponse,
        }
    }
}

/// Kind of scan.
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    serde::Serialize,
    serde::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
#[repr(u8)]
pub enum ScanType {
    /// `-sS`: stateless TCP SYN.
    Syn,
    /// `-sT`: TCP connect over io_uring.
    Connect,
    /// `-sU`: UDP with protocol payloads.
    Udp,
    /// `-sF`: raw TCP FIN (closed: reset; open|filtered: silence).
    Fin,
    /// `-sN`: raw TCP segment without flags (as `-sF`).
    Null,
    /// `-sX`: raw TCP FIN+PSH+URG (as `-sF`).
    Xmas,
    /// `-sA`: raw TCP ACK (unfiltered: reset; filtered: silence).
    Ack,
    /// `-sW`: raw TCP ACK, the reset's window tells open (non-zero) from closed.
    Window,
    /// `-sM`: raw TCP FIN+ACK (Maimon's; as `-sF`).
    Maimon,
    /// `-sn`: host discovery only (a ping sweep), raw. [`ScanSpec::ports`] holds
    /// the discovery probes in nmap's `-P` syntax (`PE,PS443,PA80,PP`), one walk
    /// "port" each; the results are host replies ([`Protocol::Host`]).
    Ping,
}

impl ScanType {
    /// Whether it is a raw scan: sent by the packet engine (AF_PACKET or AF_XDP)
    /// as stateless probes walked in passes, needing CAP_NET_RAW (`-sS` and the
    /// flag scans `-sF -sN -sX -sA -sW -sM`, and the ping sweep `-sn`; not the
    /// socket scans `-sT`, `-sU`).
    pub fn is_raw(self) -> bool {
        !matches!(self, ScanType::Connect | ScanType::Udp)
    }

    /// Its nmap option (`-sS`, `-sT`, ...).
    pub fn flag(self) -> &'static str {
        match self {
            ScanType::Syn => "-sS",
            ScanType::Connect => "-sT",
            ScanType::Udp => "-sU",
            ScanType::Fin => "-sF",
            ScanType::Null => "-sN",
            ScanType::Xmas => "-sX",
            ScanType::Ack => "-sA",
            ScanType::Window => "-sW",
            ScanType::Maimon => "-sM",
            ScanType::Ping => "-sn",
        }
    }

    /// The scan type of an nmap `-s` letter (`S`, `T`, `U`, `F`, `N`, `X`, `A`,
    /// `W`, `M`).
    pub fn from_letter(c: char) -> Option<ScanType> {
        Some(match c {
            'S' => ScanType::Syn,
            'T' => ScanType::Connect,
            'U' => ScanType::Udp,
            'F' => ScanType::Fin,
            'N' => ScanType::Null,
            'X' => ScanType::Xmas,
            'A' => ScanType::Ack,
            'W' => ScanType::Window,
            'M' => ScanType::Maimon,
            _ => return None,
        })
    }
}

impl ScanType {
    /// What an unanswered probe of this scan type means for `proto`, as nmap reads
    /// it: a SYN probe's silence is `filtered`, a UDP probe's `open|filtered`. The
    /// one definition readers use to project silence from a log (the engine's probe
    /// modules agree: `ProbeSet::silence`, tested there).
    pub fn silence(self, proto: Protocol) -> PortState {
        match (self, proto) {
            (_, Protocol::Udp) => PortState::OpenFiltered,
            (
                ScanType::Syn
                | ScanType::Connect
                | ScanType::Udp
                | ScanType::Ack
                | ScanType::Window,
                Protocol::Tcp,
            ) => PortState::Filtered,
            (ScanType::Fin | ScanType::Null | ScanType::Xmas | ScanType::Maimon, Protocol::Tcp) => {
                PortState::OpenFiltered
            }
            // A host no discovery probe reached is down.
            (_, Protocol::Host) | (ScanType::Ping, _) => PortState::Filtered,
        }
    }

    /// Whether the log leaves this scan type's silence out and readers project it
    /// (`crate::space::Space`): the raw walk scans. The socket scans (`-sT`, `-sU`)
    /// decide every port inline and write it.
    /// A ping sweep (`-sn`) writes its hosts down itself, one per host.
    pub fn projects_silence(self) -> bool {
        self.is_raw() && self != ScanType::Ping
    }
}

/// Packet path used to send probes.
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    serde::Serialize,
    serde::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
#[repr(u8)]
pub enum BackendKind {
    /// AF_PACKET (sendmmsg + TPACKET_V3 RX ring).
    Packet,
    /// AF_XDP socket with our XDP program.
    Xdp,
    /// io_uring TCP connects (no privileges).
    Connect,
}

/// One requested output file (`-oX out.xml` is `{ format: "xml", path: "out.xml" }`).
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    PartialEq,
    Eq,
    Debug,
    serde::Serialize,
    serde::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct OutputSpec {
    /// `text`, `json`, `xml`, `grep`, `csv`, `html`, `pdf`, or `all` (`-oA BASE`).
    pub format: String,
    /// Path as given; `-` is stdout.
    pub path: String,
}

/// A host name given as a target and the address it resolved to (once, at scan start).
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    PartialEq,
    Eq,
    Debug,
    serde::Serialize,
    serde::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct HostName {
    /// Name as the user typed it.
    pub name: String,
    /// Address it resolved to.
    pub addr: Addr,
}

/// Where the AF_XDP filter program runs (`--xdp-mode`).
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
#[repr(u8)]
pub enum XdpMode {
    /// In the driver, falling back to the generic path with a note (the default).
    #[default]
    Native,
    /// In the generic (SKB) path, on any driver.
    Skb,
}

/// AF_XDP zero-copy (`--zero-copy`).
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
#[repr(u8)]
pub enum ZeroCopy {
    /// Where the driver has it (the default).
    #[default]
    Auto,
    /// Required: the scan fails where the driver has none.
    On,
    /// Copy mode only.
    Off,
}

/// The AF_XDP backend's settings (used when [`ScanSpec::backend`] is
/// [`BackendKind::Xdp`]).
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct XdpSettings {
    /// Where the filter program runs.
    pub mode: XdpMode,
    /// Zero-copy.
    pub zero_copy: ZeroCopy,
    /// Queues to send on, one thread each (`None`: one per core but one, at most
    /// every queue).
    pub queues: Option<u32>,
}

/// Per-probe and per-host settings (nmap's `--ttl`, `-g`/`--source-port`,
/// `--host-timeout`, `--max-rtt-timeout`).
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct ProbeSettings {
    /// IP TTL / IPv6 hop limit of raw probes (`--ttl`; `None`: 64).
    pub ttl: Option<u8>,
    /// Fixed source port of raw probes (`-g`; `None`: the cookie chooses it from
    /// 40960..57343). With a fixed port the cookie lives in the sequence number alone.
    pub source_port: Option<u16>,
    /// Give up on a host this long after its first probe, ms (`--host-timeout`):
    /// its remaining ports are skipped (socket scans and `-sV`).
    pub host_timeout_ms: Option<u64>,
    /// `--max-rtt-timeout`, ms, as given: already applied to the retry gap, the
    /// wait and the socket timeout of the spec; kept for the record.
    pub max_rtt_timeout_ms: Option<u64>,
}

/// Settings of the socket scans (`-sT`, `-sU`) and of service detection (`-sV`).
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct SocketSettings {
    /// Most sockets in flight (`--max-parallelism`; `None`: 4096 for -sT, 1024 for
    /// -sU, 512 for -sV).
    pub max_parallelism: Option<u64>,
    /// How long one connect attempt or datagram waits, ms (`--connect-timeout`;
    /// `None`: the wait clamped to 0.5..3 s).
    pub connect_timeout_ms: Option<u64>,
    /// Rarest probes tried by `-sV`, 0..=9 (`--version-intensity`; `None`: 7).
    pub version_intensity: Option<u8>,
    /// How long `-sV` reads each probe's answer, ms (`--version-wait`; `None`: the
    /// probe's own wait).
    pub version_wait_ms: Option<u64>,
}

/// Everything a scan was told. Stored in [`ScanStarted`], so resume needs only the
/// log. Every setting is stored once, resolved (defaults applied by whoever built
/// the spec, e.g. the cli's flags → spec step).
#[derive(
    Archive, Serialize, Deserialize, Clone, PartialEq, Debug, serde::Serialize, serde::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct ScanSpec {
    /// Target tokens as given (after `-iL` expansion), e.g. `10.0.0.0/24`, `host.example`.
    pub targets: Vec<String>,
    /// Host names among the targets and what they resolved to.
    pub resolved: Vec<HostName>,
    /// Exclude tokens (after `--excludefile` expansion).
    pub excludes: Vec<String>,
    /// Canonical port list, e.g. `T:22,80,443,U:53`; for a [`ScanType::Ping`] scan the
    /// discovery probes, e.g. `PE,PS443,PA80,PP` (see `ScanType::Ping`).
    pub ports: String,
    /// Scan type.
    pub scan_type: ScanType,
    /// `-sV`: grab banners and detect services.
    pub service_detection: bool,
    /// Probes per second × 1000 (`--rate 2.5` is 2500), 0 = unlimited.
    pub rate_mpps: u64,
    /// Upper bound on the rate (`--max-rate`), probes per second × 1000, 0 = none.
    pub max_rate_mpps: u64,
    /// nmap timing template `-T0`..`-T5` (3 when not given).
    pub timing: u8,
    /// Least time between two passes over the unanswered probes, ms (`None`: the
    /// timing template's, at most the wait).
    pub retry_gap_ms: Option<u64>,
    /// Permutation and cookie key.
    pub seed: u64,
    /// This shard (`--shard i/N`: i, 0-based).
    pub shard_index: u32,
    /// Number of shards (1 = no sharding).
    pub shard_count: u32,
    /// Packet path.
    pub backend: BackendKind,
    /// The AF_XDP backend's settings.
    pub xdp: XdpSettings,
    /// The socket scans' and service detection's settings.
    pub sockets: SocketSettings,
    /// Interface (`-e` / `--xdp IFACE`), if given or discovered.
    pub interface: Option<String>,
    /// Source address (`-S`), if given or discovered.
    pub source: Option<Addr>,
    /// Gateway MAC (`--router-mac`), if given or discovered.
    pub router_mac: Option<[u8; 6]>,
    /// Retransmissions of an unanswered probe (`--max-retries`).
    pub max_retries: u32,
    /// Time to wait for late replies after the last probe, milliseconds (`--wait`).
    pub wait_ms: u64,
    /// Write a checkpoint every this many probes (0 = only by time).
    pub checkpoint_every_probes: u64,
    /// Write a checkpoint every this many milliseconds (0 = only by count).
    pub checkpoint_every_ms: u64,
    /// Output files to (re)generate from the log.
    pub outputs: Vec<OutputSpec>,
    /// `--filter` expression, if any.
    pub filter: Option<String>,
    /// `--service-probes FILE`, if given.
    pub service_probes: Option<String>,
    /// Per-probe and per-host settings (`--ttl`, `-g`, `--host-timeout`).
    pub probe: ProbeSettings,
    /// Walk position this log starts at: a gap scan of `prtip scan --from-gaps`
    /// sends its shard from here; 0 for a scan from the start.
    pub walk_from: u64,
    /// A log folded by `prtip merge`: where each part came from (empty otherwise).
    pub merged_from: Vec<MergedPart>,
}

/// One log folded into a merged scan (`prtip merge`).
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    PartialEq,
    Eq,
    Debug,
    serde::Serialize,
    serde::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct MergedPart {
    /// Its shard, `i/N`.
    pub shard: String,
    /// Its scan id.
    pub scan_id: u64,
    /// Its log directory.
    pub log: String,
    /// The walk positions it covered, `[start, end)`.
    pub walk: [u64; 2],
    /// When it started, Unix µs.
    pub started_us: u64,
    /// When it ended, Unix µs, if it did.
    pub ended_us: Option<u64>,
    /// The interface it sent on.
    pub interface: Option<String>,
}

/// An empty spec: no targets, no ports, a `-sS` scan at T3 over the packet backend,
/// no rate limit, seed 0, one shard, no retries, no wait, the template's retry
/// gap, no checkpoint interval, default AF_XDP and socket settings, no outputs, no filter.
/// Tests and tools set what they need on top (`ScanSpec { ports: ..,
/// ..ScanSpec::default() }`); the cli builds every field itself.
impl Default for ScanSpec {
    fn default() -> Self {
        ScanSpec {
            targets: Vec::new(),
            resolved: Vec::new(),
            excludes: Vec::new(),
            ports: String::new(),
            scan_type: ScanType::Syn,
            service_detection: false,
            rate_mpps: 0,
            max_rate_mpps: 0,
            timing: 3,
            retry_gap_ms: None,
            seed: 0,
            shard_index: 0,
            shard_count: 1,
            backend: BackendKind::Packet,
            xdp: XdpSettings::default(),
            sockets: SocketSettings::default(),
            interface: None,
            source: None,
            router_mac: None,
            max_retries: 0,
            wait_ms: 0,
            checkpoint_every_probes: 0,
            checkpoint_every_ms: 0,
            outputs: Vec::new(),
            filter: None,
            service_probes: None,
            probe: ProbeSettings::default(),
            walk_from: 0,
            merged_from: Vec::new(),
        }
    }
}

/// Program and schema versions that wrote a scan.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct Versions {
    /// prtip's version (`CARGO_PKG_VERSION`).
    pub prtip: String,
    /// [`SCHEMA_VERSION`] at the time of writing.
    pub schema: u32,
}

/// First event of every scan log.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub struct ScanStarted {
    /// History id of the scan.
    pub scan_id: u64,
    /// Unix time, microseconds.
    pub time_us: u64,
    /// Everything the scan was told.
    pub spec: ScanSpec,
    /// Versions that wrote it.
    pub versions: Versions,
    /// Command line as typed.
    pub command_line: Vec<String>,
    /// Size of the whole probe index space (targets × ports × (retries + 1)).
    pub total_probes: u64,
    /// Number of target addresses after excludes.
    pub total_targets: u64,
    /// Process id of the scanning process (the monitor signals it).
    pub pid: u32,
}

/// A reply (or the lack of one) that decided a port's state.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub struct Reply {
    /// Target address.
    pub addr: Addr,
    /// Target port.
    pub port: u16,
    /// Protocol.
    pub proto: Protocol,
    /// Port state decided by this reply.
    pub state: PortState,
    /// Why.
    pub reason: Reason,
    /// IP TTL / hop limit of the reply (0 when none).
    pub ttl: u8,
    /// ICMP code when the reason is ICMP, else 0.
    pub icmp_code: u8,
    /// Round-trip time, microseconds (0 when unknown).
    pub rtt_us: u32,
    /// Unix time the reply arrived, microseconds.
    pub time_us: u64,
}

/// Raw bytes a service sent first or in answer to a probe.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub struct Banner {
    /// Target address.
    pub addr: Addr,
    /// Target port.
    pub port: u16,
    /// Protocol.
    pub proto: Protocol,
    /// Unix time, microseconds.
    pub time_us: u64,
    /// Name of the probe that drew it (`NULL` for a passive read).
    pub probe: String,
    /// The bytes, as received (capped by the grabber).
    pub bytes: Vec<u8>,
}

/// A detected service.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub struct Service {
    /// Target address.
    pub addr: Addr,
    /// Target port.
    pub port: u16,
    /// Protocol.
    pub proto: Protocol,
    /// Unix time, microseconds.
    pub time_us: u64,
    /// Service name as nmap names them (`ssh`, `http`, `smtp`, ...).
    pub name: String,
    /// Product (`OpenSSH`), empty when unknown.
    pub product: String,
    /// Version (`9.2p1`), empty when unknown.
    pub version: String,
    /// Extra info (`protocol 2.0`, TLS certificate subject, ...).
    pub extra: String,
    /// 0.0 ..= 1.0.
    pub confidence: f32,
    /// How it was found: `probe`, `banner`, `port-table`.
    pub method: String,
}

/// Counters carried by checkpoints and the final event.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[rkyv(derive(Debug))]
pub struct Counters {
    /// Probes sent (including retries).
    pub sent: u64,
    /// Valid replies received.
    pub replies: u64,
    /// Replies that failed the cookie check or could not be parsed.
    pub invalid: u64,
    /// Ports found open so far.
    pub open: u64,
    /// Ports found closed so far.
    pub closed: u64,
    /// Packets the kernel or ring reported dropped.
    pub drops: u64,
}

/// A durable position in the walk: resume continues at `next_index`.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct Checkpoint {
    /// First probe index not yet known to be sent (everything below it was sent).
    pub next_index: u64,
    /// Counters at that moment.
    pub counters: Counters,
    /// Unix time, microseconds.
    pub time_us: u64,
}

/// The scan stopped on request; resumable.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct Paused {
    /// Same as the checkpoint written just before.
    pub next_index: u64,
    /// Unix time, microseconds.
    pub time_us: u64,
    /// `SIGINT`, `SIGTERM`, `monitor`, ...
    pub reason: String,
}

/// The scan continues (after a pause, or in a new process after a crash).
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct Resumed {
    /// Index the walk continues from.
    pub from_index: u64,
    /// Unix time, microseconds.
    pub time_us: u64,
    /// Process id now scanning.
    pub pid: u32,
}

/// The walk is complete and the wait for late replies is over.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct Finished {
    /// Unix time, microseconds.
    pub time_us: u64,
    /// Final counters.
    pub counters: Counters,
}

/// The scan could not continue.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct Failed {
    /// Unix time, microseconds.
    pub time_us: u64,
    /// What went wrong.
    pub message: String,
}

/// A metrics sample, about once a second while scanning.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Debug, Default)]
#[rkyv(derive(Debug))]
pub struct Sample {
    /// Unix time, microseconds.
    pub time_us: u64,
    /// Probes sent per second over the last interval.
    pub pps: f64,
    /// Replies per second over the last interval.
    pub rps: f64,
    /// Counters so far.
    pub counters: Counters,
    /// Process CPU, percent of one core.
    pub cpu_percent: f32,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Bytes sent on the scan interface so far.
    pub net_tx_bytes: u64,
    /// Bytes received on the scan interface so far.
    pub net_rx_bytes: u64,
    /// Log bytes made durable so far.
    pub log_bytes: u64,
    /// Reply RTT percentiles over the interval, microseconds: p50, p90, p99, max.
    pub rtt_us: [u32; 4],
}

/// An export was written completely.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct ExportComplete {
    /// Unix time, microseconds.
    pub time_us: u64,
    /// Format name.
    pub format: String,
    /// Where it was written.
    pub path: String,
    /// Result rows written.
    pub rows: u64,
}

/// Why the rate governor wrote a [`Governor`] event.
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    serde::Serialize,
    serde::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
#[repr(u8)]
pub enum GovernorReason {
    /// Its settings at the start of a run (a resume starts from `rate_mpps`).
    Start = 0,
    /// Reference probes went unanswered: the rate went down.
    Loss = 1,
    /// No loss: the rate went up.
    Clear = 2,
    /// One network lost probes while the others did not: it got a rate of its own.
    NetLoss = 3,
    /// That network's penalty was lifted.
    NetClear = 4,
    /// The uplink failed (interface down, next hop silent): sending holds.
    UplinkDown = 5,
    /// The uplink works again: sending continues.
    UplinkUp = 6,
    /// The run ended (pause, hold or finish): the rate it had learned.
    Learned = 7,
}

impl GovernorReason {
    /// Lower-case name (`loss`, `clear`, `uplink-down`, ...).
    pub fn name(self) -> &'static str {
        match self {
            GovernorReason::Start => "start",
            GovernorReason::Loss => "loss",
            GovernorReason::Clear => "clear",
            GovernorReason::NetLoss => "net-loss",
            GovernorReason::NetClear => "net-clear",
            GovernorReason::UplinkDown => "uplink-down",
            GovernorReason::UplinkUp => "uplink-up",
            GovernorReason::Learned => "learned",
        }
    }
}

impl From<&ArchivedGovernorReason> for GovernorReason {
    fn from(a: &ArchivedGovernorReason) -> Self {
        match a {
            ArchivedGovernorReason::Start => GovernorReason::Start,
            ArchivedGovernorReason::Loss => GovernorReason::Loss,
            ArchivedGovernorReason::Clear => GovernorReason::Clear,
            ArchivedGovernorReason::NetLoss => GovernorReason::NetLoss,
            ArchivedGovernorReason::NetClear => GovernorReason::NetClear,
            ArchivedGovernorReason::UplinkDown => GovernorReason::UplinkDown,
            ArchivedGovernorReason::UplinkUp => GovernorReason::UplinkUp,
            ArchivedGovernorReason::Learned => GovernorReason::Learned,
        }
    }
}

/// A decision of the rate governor of a `-sS` scan: the rate it chose and why.
///
/// The first of a run (`Start`) carries the settings (`adaptive`, ceiling and
/// floor), so a resume reads them from the log as it reads the spec; the last
/// one's `rate_mpps` is where a resume starts.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct Governor {
    /// Unix time, microseconds.
    pub time_us: u64,
    /// Why it was written.
    pub reason: GovernorReason,
    /// Whether the rate adapts (false: `--fixed-rate`, the rate is the ceiling).
    pub adaptive: bool,
    /// Prefix length of `net` (24 for IPv4, 48 for IPv6), 0 for the whole scan.
    pub net_prefix: u8,
    /// The scan's rate now, probes per second × 1000.
    pub rate_mpps: u64,
    /// The ceiling (`--rate` / `--max-rate`), probes per second × 1000, 0 = none.
    pub ceiling_mpps: u64,
    /// The floor (`--min-rate`), probes per second × 1000.
    pub floor_mpps: u64,
    /// The rate of `net` (`NetLoss`, `NetClear`), probes per second × 1000.
    pub net_rate_mpps: u64,
    /// Reference probes (re-probes of ports that answered) the decision rests on.
    pub refs_sent: u32,
    /// How many of them were answered.
    pub refs_answered: u32,
    /// Networks with a rate of their own now.
    pub slow_nets: u32,
    /// The network a `NetLoss` / `NetClear` is about (its first address).
    pub net: Option<Addr>,
}

/// One fact of a scan. New variants go at the end.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub enum Event {
    /// First event: the spec.
    ScanStarted(Box<ScanStarted>),
    /// A port state.
    Reply(Reply),
    /// Raw service bytes.
    Banner(Banner),
    /// A detected service.
    Service(Service),
    /// A durable position.
    Checkpoint(Checkpoint),
    /// Stopped on request.
    Paused(Paused),
    /// Continued.
    Resumed(Resumed),
    /// Done.
    Finished(Finished),
    /// Could not continue.
    Failed(Failed),
    /// Metrics.
    Sample(Sample),
    /// An export was written.
    ExportComplete(ExportComplete),
    /// A rate governor decision (added after schema 2 without a bump: older
    /// readers skip it).
    Governor(Governor),
}

/// Error from an [`EventSink`].
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The log writer stopped (disk full, I/O error, or shut down).
    #[error("scan log writer stopped: {0}")]
    Closed(String),
    /// An I/O error while making events durable.
    #[error("scan log I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the engine pushes events. The store's log writer implements it; tests may
/// implement it with a `Vec`.
pub trait EventSink: Send {
    /// Queue one event. Order is preserved.
    fn push(&mut self, event: Event) -> Result<(), SinkError>;
    /// Queue a checkpoint and block until it, and everything pushed before it, is durable.
    fn checkpoint(&mut self, checkpoint: Checkpoint) -> Result<(), SinkError>;
}

/// A sink that keeps events in memory (tests, dry runs).
impl EventSink for Vec<Event> {
    fn push(&mut self, event: Event) -> Result<(), SinkError> {
        Vec::push(self, event);
        Ok(())
    }
    fn checkpoint(&mut self, checkpoint: Checkpoint) -> Result<(), SinkError> {
        Vec::push(self, Event::Checkpoint(checkpoint));
        Ok(())
    }
}

/// Current Unix time in microseconds.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_mapped_and_comes_back() {
        let a = Addr::from(Ipv4Addr::new(198, 19, 0, 7));
        assert_eq!(a.ip(), IpAddr::V4(Ipv4Addr::new(198, 19, 0, 7)));
        assert_eq!(a.to_string(), "198.19.0.7");
        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(Addr::from(IpAddr::V6(v6)).ip(), IpAddr::V6(v6));
    }

    #[test]
    fn event_round_trips_through_rkyv() {
        let ev = Event::Reply(Reply {
            addr: Ipv4Addr::new(10, 0, 0, 1).into(),
            port: 443,
            proto: Protocol::Tcp,
            state: PortState::Open,
            reason: Reason::SynAck,
            ttl: 64,
            icmp_code: 0,
            rtt_us: 120,
            time_us: 1,
        });
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&ev).unwrap();
        let archived = rkyv::access::<ArchivedEvent, rkyv::rancor::Error>(&bytes).unwrap();
        let back: Event = rkyv::deserialize::<Event, rkyv::rancor::Error>(archived).unwrap();
        assert_eq!(back, ev);
    }
}
