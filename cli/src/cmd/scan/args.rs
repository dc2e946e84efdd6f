//! The flags of `prtip scan` as the user typed them (nmap/masscan spelling),
//! already typed where a flag takes one of a few words (clap `ValueEnum`s).
//! [`super::spec::build_spec`] turns them into a `ScanSpec`: defaults and
//! conflicts between flags live there, not here.

use clap::builder::{PossibleValue, TypedValueParser};
use clap::ValueEnum;
use std::path::PathBuf;

/// `--backend`: the packet path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// AF_PACKET (the default for -sS).
    Packet,
    /// AF_XDP with prtip's XDP filter.
    Xdp,
    /// io_uring sockets (-sT, -sU).
    Connect,
}

/// `--xdp-mode`: where the XDP filter program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum XdpModeArg {
    /// In the driver (falls back to skb with a note).
    #[value(alias = "drv")]
    Native,
    /// In the generic path.
    #[value(alias = "generic")]
    Skb,
}

/// `--zero-copy`: AF_XDP zero-copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ZeroCopyArg {
    /// Where the driver has it.
    Auto,
    /// Required.
    #[value(alias = "yes", alias = "require")]
    On,
    /// Copy mode only.
    #[value(alias = "no")]
    Off,
}

/// A clap value parser for a `ValueEnum` whose error names the flag and the
/// accepted words in prtip's words (`bad --xdp-mode "turbo": use native or skb`).
#[derive(Clone)]
pub struct Words<T> {
    flag: &'static str,
    hint: &'static str,
    _t: std::marker::PhantomData<fn() -> T>,
}

/// [`Words`] for `flag`, with `hint` after the bad value.
pub fn words<T>(flag: &'static str, hint: &'static str) -> Words<T> {
    Words {
        flag,
        hint,
        _t: std::marker::PhantomData,
    }
}

impl<T: ValueEnum + Clone + Send + Sync + 'static> TypedValueParser for Words<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let s = value.to_string_lossy();
        T::from_str(&s, false).map_err(|_| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("bad {} \"{s}\": {}\n", self.flag, self.hint),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            T::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value()),
        ))
    }
}

/// Flags of `prtip scan`. nmap spellings with several letters after one dash
/// (`-iL`, `-oN`, `-oX`, `-oG`, `-oA`, `-oJ`) are accepted as written.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Targets: addresses, CIDR blocks, ranges (10.0.0.1-10.0.0.50, 10.0.0-3.1-254), host names.
    pub targets: Vec<String>,
    /// Read targets from FILE (white-space separated, # comments; - for stdin). Written -iL.
    #[arg(long = "iL", value_name = "FILE")]
    pub input_list: Option<PathBuf>,
    /// Exclude targets (comma-separated, same syntax as targets).
    #[arg(long, value_name = "LIST")]
    pub exclude: Vec<String>,
    /// Exclude the targets listed in FILE.
    #[arg(long, value_name = "FILE")]
    pub excludefile: Vec<PathBuf>,
    /// Ports: 22,80,8000-8100, - (all), T:/U: prefixes, service names. Default: top 1000.
    #[arg(
        short = 'p',
        long = "ports",
        value_name = "PORTS",
        allow_hyphen_values = true
    )]
    pub ports: Option<String>,
    /// The N most frequent ports of the shipped frequency list.
    #[arg(long = "top-ports", value_name = "N")]
    pub top_ports: Option<usize>,
    /// Fast: the 100 most frequent ports.
    #[arg(short = 'F')]
    pub fast: bool,
    /// Scan type, nmap's letters: -sS (SYN, default), -sT (connect, no privilege), -sU (UDP),
    /// -sF (FIN), -sN (NULL), -sX (Xmas), -sA (ACK), -sW (Window), -sM (Maimon), -sV (service
    /// detection). Combine as in nmap: -sS -sU (or -sSU) scans TCP and UDP in one raw scan,
    /// -sSV = -sS -sV. -sn: host discovery only, a ping sweep (no ports; probes from -P,
    /// nmap's mix by default).
    ///
    /// States as nmap gives them: -sF/-sN/-sX/-sM: reset closed, silence open|filtered;
    /// -sA: reset unfiltered, silence filtered; -sW: reset with a non-zero window open,
    /// with a zero window closed, silence filtered; ICMP unreachable filtered.
    #[arg(short = 's', value_name = "S|T|U|F|N|X|A|W|M|V|n")]
    pub scan: Vec<String>,
    /// IPv6 only (nmap's -6): IPv4 targets are refused. IPv6 targets are scanned without it.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Add nmap's REASON column (why each port has its state, with the reply's TTL) to the
    /// normal output: the table printed at the end and -oN.
    #[arg(long)]
    pub reason: bool,
    /// Timing template -T0..-T5 (default 3; --help shows the table).
    ///
    /// --rate, --max-retries and --wait override the template's values:
    ///   -T0 paranoid    0.003 probes/s  2 retries  wait 30 s
    ///   -T1 sneaky      0.066 probes/s  2 retries  wait 15 s
    ///   -T2 polite      2.5 probes/s    2 retries  wait 10 s
    ///   -T3 normal      10 000 probes/s 2 retries  wait 3 s
    ///   -T4 aggressive  100 000 probes/s 1 retry   wait 2 s
    ///   -T5 insane      1 000 000 probes/s 0 retries wait 1 s
    #[arg(short = 'T', value_name = "0-5", verbatim_doc_comment)]
    pub timing: Option<u8>,
    /// Probes per second (50000, 2.5, 100k, 1M); overrides -T.
    ///
    /// For -sS this is the ceiling of the rate governor: prtip re-probes ports
    /// that answered to measure loss on the path, backs off when probes are
    /// dropped (policers, firewalls, congested links) and climbs back when they
    /// are not, so no answer is lost to a rate the path cannot carry; one slow
    /// /24 (IPv6: /48) gets a rate of its own. --fixed-rate sends at exactly
    /// this rate instead.
    #[arg(long, value_name = "PPS")]
    pub rate: Option<String>,
    /// Upper bound on the rate.
    #[arg(long = "max-rate", value_name = "PPS")]
    pub max_rate: Option<String>,
    /// The rate governor's floor: never slower than PPS, whatever the path drops
    /// (nmap's --min-rate).
    #[arg(long = "min-rate", value_name = "PPS")]
    pub min_rate: Option<String>,
    /// Send at exactly --rate: no rate governor (no re-probes, no back-off).
    #[arg(long = "fixed-rate")]
    pub fixed_rate: bool,
    /// Retransmissions of an unanswered probe, at most (-sT, -sU: the -T
    /// template's; raw scans: nmap's caps, 10, 6 at -T4, 2 at -T5, and after the
    /// first retry pass another only while the one before it found answers, one
    /// per 1 000 of its probes at least).
    #[arg(long = "max-retries", value_name = "N")]
    pub max_retries: Option<u32>,
    /// Wait for late replies after the last probe (seconds, or 500ms, 2s, 1m).
    #[arg(long, value_name = "TIME")]
    pub wait: Option<String>,
    /// Permutation and cookie key (default: random). Same seed, same probe order.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Scan one slice of the walk: i/N (0-based). `$(JOB_COMPLETION_INDEX)/N` takes
    /// i from that variable (a Kubernetes Indexed Job); see docs/scale-out.md.
    #[arg(long, value_name = "i/N")]
    pub shard: Option<String>,
    /// If --home holds this scan's shard (same spec, seed and --shard) unfinished,
    /// resume it from its last checkpoint; if finished, send nothing (needs --seed).
    /// A run that ends paused exits 75, so that a Kubernetes Job runs it again.
    #[arg(long = "continue")]
    pub continue_shard: bool,
    /// Send what `prtip merge --gaps FILE` said is missing (no targets needed).
    #[arg(long = "from-gaps", value_name = "FILE")]
    pub from_gaps: Option<PathBuf>,
    /// Interface to send on (default: from the routing table).
    #[arg(short = 'e', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,
    /// Source address (default: what the kernel would choose).
    #[arg(short = 'S', long = "source-ip", value_name = "ADDR")]
    pub source: Option<String>,
    /// MAC of the next hop (default: from the neighbour table, else ARP).
    #[arg(long = "router-mac", value_name = "MAC")]
    pub router_mac: Option<String>,
    /// Packet path for -sS: packet (AF_PACKET, default) or xdp (AF_XDP).
    #[arg(long, value_name = "packet|xdp",
          value_parser = words::<BackendArg>("--backend", "use packet or xdp"))]
    pub backend: Option<BackendArg>,
    /// AF_XDP kernel-bypass on IFACE (= --backend xdp -e IFACE); see docs/xdp-on-real-nics.md.
    #[arg(long = "xdp", value_name = "IFACE")]
    pub xdp: Option<String>,
    /// XDP mode of prtip's filter program with --xdp: native (default; falls back to skb with a note) or skb.
    #[arg(long = "xdp-mode", value_name = "native|skb",
          value_parser = words::<XdpModeArg>("--xdp-mode", "use native or skb"))]
    pub xdp_mode: Option<XdpModeArg>,
    /// AF_XDP zero-copy with --xdp: auto (default: where the driver has it), on (required) or off.
    #[arg(long = "zero-copy", value_name = "auto|on|off", num_args = 0..=1, default_missing_value = "on",
          value_parser = words::<ZeroCopyArg>("--zero-copy", "use auto, on or off"))]
    pub zero_copy: Option<ZeroCopyArg>,
    /// Queues to send on with --xdp, one thread each (default: one per core but one, at most every queue).
    #[arg(long = "xdp-queues", value_name = "N")]
    pub xdp_queues: Option<u32>,
    /// Checkpoint every N probes (in addition to time).
    #[arg(long = "checkpoint-every", value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Checkpoint at least this often (default 1s).
    #[arg(long = "checkpoint-interval", value_name = "TIME")]
    pub checkpoint_interval: Option<String>,
    /// nmap normal output to FILE (-oN).
    #[arg(long = "oN", value_name = "FILE")]
    pub out_normal: Option<String>,
    /// nmap XML output to FILE (-oX).
    #[arg(long = "oX", value_name = "FILE")]
    pub out_xml: Option<String>,
    /// Greppable output to FILE (-oG).
    #[arg(long = "oG", value_name = "FILE")]
    pub out_grep: Option<String>,
    /// BASE.nmap, BASE.xml and BASE.gnmap (-oA).
    #[arg(long = "oA", value_name = "BASE")]
    pub out_all: Option<String>,
    /// JSON lines to FILE (-oJ).
    #[arg(long = "oJ", value_name = "FILE")]
    pub out_json: Option<String>,
    /// CSV to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<String>,
    /// HTML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<String>,
    /// PDF report to FILE.
    #[arg(long, value_name = "FILE")]
    pub pdf: Option<String>,
    /// Keep only rows matching this filter expression in the output files and
    /// the report printed at the end (see filter/README.md).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Service probes file for -sV (nmap-service-probes or prtip format).
    #[arg(long = "service-probes", value_name = "FILE")]
    pub service_probes: Option<String>,
    /// -sT/-sU/-sV: most sockets in flight at once (default 4096 for -sT, 1024 for -sU,
    /// 512 for -sV; lowered to what RLIMIT_NOFILE allows).
    #[arg(long = "max-parallelism", value_name = "N")]
    pub max_parallelism: Option<u64>,
    /// -sT/-sU: how long one connect attempt or datagram waits for an answer
    /// (default: --wait clamped to 0.5..3 s).
    #[arg(long = "connect-timeout", value_name = "TIME")]
    pub connect_timeout: Option<String>,
    /// -sV: try probes up to this rarity, 0 (fewest) ..9 (all); default 7.
    #[arg(long = "version-intensity", value_name = "0-9")]
    pub version_intensity: Option<u8>,
    /// -sV: how long to read each probe's answer (default: the probe's own wait, 2-3 s).
    #[arg(long = "version-wait", value_name = "TIME")]
    pub version_wait: Option<String>,
    /// Host discovery probes, nmap's -P options (repeatable): -PE (ICMP echo),
    /// -PP (ICMP timestamp), -PM (ICMP address mask), -PS (TCP SYN), -PA (TCP ACK),
    /// -PU (UDP), the last three with optional ports as in -PS22,443 (default 80,
    /// 80 and 40125), -PR (ARP; NDP for IPv6). They pick the probes of a -sn ping
    /// sweep, or of the host discovery a raw port scan (-sS, -sF, ...) then runs
    /// first, as nmap does: the sweep of every target, then the port scan of the
    /// hosts found up only, in one scan (not with -PR, -sT, -sU or --shard).
    /// Without a -P option a port scan pings nothing first: -Pn (no host
    /// discovery) is prtip's default, as in masscan: every target is probed.
    #[arg(short = 'P', value_name = "E|P|M|S[ports]|A[ports]|U[ports]|R|n")]
    pub ping: Vec<String>,
    /// nmap's -n (no reverse DNS): accepted; prtip never does reverse DNS.
    #[arg(short = 'n', hide = true)]
    pub no_dns: bool,
    /// Print no results: neither open ports as found nor the report at the end,
    /// only the last line of figures (the log and the -o* files have everything).
    #[arg(long)]
    pub quiet: bool,
    /// Run the scan with the monitor in front (full screen; keys as in `prtip
    /// monitor`). `p`/`r` hold and continue the scan in place; `q` (or Esc,
    /// Ctrl-C) only leaves the monitor: the scan keeps going in the terminal with
    /// its progress line and summary, and Ctrl-C then pauses it (resumable).
    #[arg(long)]
    pub tui: bool,

    // --- Outputs and what is printed while the scan runs (h/stream) ---
    /// nmap's --open: only ports that are (possibly) open (open, open|filtered)
    /// in the printed report and every output file; hosts without one are left out.
    #[arg(long)]
    pub open: bool,
    /// Verbose (nmap's -v; -vv more): -v prints the plan at the start, a line when
    /// service detection starts, and a status line every 10 s when stderr is not
    /// a terminal (30 s without -v); -vv adds the reason, TTL and RTT to each
    /// "Discovered" line. Everything but results goes to stderr.
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Debug (nmap's -d; -dd more): every lifecycle event as the log gets it
    /// (samples, pause, resume, banners, services, the end); -dd every reply too.
    #[arg(short = 'd', action = clap::ArgAction::Count)]
    pub debug: u8,
    /// A status line every TIME (nmap's --stats-every: 10s, 500ms, 1m), on a
    /// terminal too (above the progress line, which is redrawn in place).
    #[arg(long = "stats-every", value_name = "TIME")]
    pub stats_every: Option<String>,

    // ---- nmap's per-host and per-probe options (scan/limits.rs; docs/ports.md) ----
    /// Give up on a host TIME after its first probe (30s, 5m): its remaining ports
    /// are skipped and it is reported as timed out (-sT, and the -sV phase of any scan).
    #[arg(long = "host-timeout", value_name = "TIME", allow_hyphen_values = true)]
    pub host_timeout: Option<String>,
    /// Longest wait for a probe's answer (100ms, 1s): caps the retry gap, the
    /// wait for late replies and each -sT/-sU attempt's timeout.
    #[arg(
        long = "max-rtt-timeout",
        value_name = "TIME",
        allow_hyphen_values = true
    )]
    pub max_rtt_timeout: Option<String>,
    /// Send raw probes from this source port (-sS); the SYN cookie then lives in
    /// the sequence number alone (docs/ports.md).
    #[arg(
        short = 'g',
        long = "source-port",
        value_name = "PORT",
        allow_hyphen_values = true
    )]
    pub source_port: Option<String>,
    /// IP TTL / IPv6 hop limit of raw probes, 1-255 (default 64).
    #[arg(long = "ttl", value_name = "1-255", allow_hyphen_values = true)]
    pub ttl: Option<String>,
}

/// Rewrite nmap's multi-letter single-dash flags (`-iL`, `-oX`, ...) into the long
/// forms clap knows. Applied by `main` before parsing.
pub fn nmap_style_args(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.map(|a| match a.to_str() {
        Some(s @ ("-iL" | "-oN" | "-oX" | "-oG" | "-oA" | "-oJ")) => format!("-{s}").into(),
        _ => a,
    })
    .collect()
}
