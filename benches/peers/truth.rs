//! Recall against the lab's ground truth: every address of the scanned network
//! answers, SYN-ACK on the lab's open ports and RST on the others. A bitmap of
//! (address, port) folds duplicates; anything reported open that the lab does
//! not hold open counts as a false positive. Owns no I/O beyond reading the
//! scanners' output files.

use std::net::Ipv4Addr;

/// The scanned space and which of it is open.
#[derive(Clone, Debug)]
pub struct Truth {
    /// First address of the scanned network.
    pub base: u32,
    /// Number of addresses.
    pub hosts: u32,
    /// Scanned ports.
    pub ports: Vec<u16>,
    /// Which scanned ports the lab holds open.
    pub open: Vec<u16>,
    /// Only addresses whose index is 1 modulo this answer (the sparse
    /// responder; 1: every address).
    pub live_every: u32,
}

impl Truth {
    /// `net/prefix` × `ports`, of which `open` answer SYN-ACK.
    pub fn new(net: Ipv4Addr, prefix: u8, ports: &[u16], lab_open: &[u16]) -> Truth {
        let hosts = 1u32 << (32 - prefix as u32);
        Truth {
            base: u32::from(net) & !(hosts - 1),
            hosts,
            ports: ports.to_vec(),
            open: ports
                .iter()
                .copied()
                .filter(|p| lab_open.contains(p))
                .collect(),
            live_every: 1,
        }
    }

    /// The same space where only addresses whose index is 1 modulo `every`
    /// answer (the responder's sparse mode).
    pub fn sparse(mut self, every: u32) -> Truth {
        self.live_every = every.max(1);
        self
    }

    /// Addresses that answer.
    pub fn live_hosts(&self) -> u64 {
        match self.live_every {
            1 => self.hosts as u64,
            n => (self.hosts as u64 + n as u64 - 2) / n as u64,
        }
    }

    fn live(&self, off: u32) -> bool {
        self.live_every == 1 || off % self.live_every == 1
    }

    /// CIDR text of the scanned network.
    pub fn cidr(&self) -> String {
        format!(
            "{}/{}",
            Ipv4Addr::from(self.base),
            32 - self.hosts.trailing_zeros()
        )
    }

    /// Open (address, port) pairs a perfect scan finds.
    pub fn open_count(&self) -> u64 {
        self.live_hosts() * self.open.len() as u64
    }

    /// Probes a full scan sends (one per address and port).
    pub fn probes(&self) -> u64 {
        self.hosts as u64 * self.ports.len() as u64
    }

    /// An empty tally for this space.
    pub fn tally(&self) -> Tally<'_> {
        Tally {
            truth: self,
            seen: vec![0u64; (self.probes() as usize).div_ceil(64)],
            found: 0,
            false_pos: 0,
            dups: 0,
        }
    }
}

/// Open results seen so far.
pub struct Tally<'a> {
    truth: &'a Truth,
    seen: Vec<u64>,
    found: u64,
    false_pos: u64,
    dups: u64,
}

impl Tally<'_> {
    /// Record that a scanner reported `addr:port` open.
    pub fn open(&mut self, addr: Ipv4Addr, port: u16) {
        let t = self.truth;
        let off = u32::from(addr).wrapping_sub(t.base);
        let Some(pi) = t.ports.iter().position(|&p| p == port) else {
            self.false_pos += 1;
            return;
        };
        if off >= t.hosts || !t.open.contains(&port) || !t.live(off) {
            self.false_pos += 1;
            return;
        }
        let i = off as usize * t.ports.len() + pi;
        let (w, b) = (i / 64, 1u64 << (i % 64));
        if self.seen[w] & b != 0 {
            self.dups += 1;
        } else {
            self.seen[w] |= b;
            self.found += 1;
        }
    }

    /// The result.
    pub fn finish(self) -> Recall {
        let want = self.truth.open_count();
        Recall {
            found: self.found,
            want,
            recall: if want == 0 {
                1.0
            } else {
                self.found as f64 / want as f64
            },
            false_pos: self.false_pos,
            dups: self.dups,
        }
    }
}

/// How much of the ground truth a scan found.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Recall {
    /// Distinct open (address, port) found that the lab holds open.
    pub found: u64,
    /// Open (address, port) in the lab.
    pub want: u64,
    /// found / want.
    pub recall: f64,
    /// Reported open but not open in the lab (or outside the scanned space).
    pub false_pos: u64,
    /// Reported more than once.
    pub dups: u64,
}

impl Recall {
    /// Exactly the ground truth: everything found, nothing extra.
    pub fn perfect(&self) -> bool {
        self.found == self.want && self.false_pos == 0
    }
}
