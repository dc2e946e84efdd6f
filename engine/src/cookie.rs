//! Stateless reply validation: a keyed SipHash cookie per (address, port, protocol).
//!
//! Owns: the cookie function and how it is spread over a probe. The low 32 bits are
//! the TCP sequence number (a SYN-ACK or RST answers with `ack = seq + 1`, an ICMP
//! error quotes `seq`); bits 32..46 choose the source port in
//! `[SPORT_BASE, SPORT_BASE + SPORT_SPAN)` = 40960..57343, which the reply carries
//! back as its destination port. A reply validates when both match what the cookie
//! of its (source address, source port) predicts, so no per-probe state is kept.
//! The range 40960-57343 sits inside Linux's ephemeral range but prtip scans from a
//! namespace of its own (and the BPF filter only lets this range through).
//!
//! With a fixed source port (`-g`/`--source-port`, [`Cookies::with_source_port`])
//! every probe leaves from that port and the cookie lives in the sequence number
//! alone: 32 bits instead of 46 for TCP (a forged reply must guess them), and for
//! UDP nothing but the target's address and port is left to check (a UDP reply
//! carries no copy of our sequence number). The reply filter then lets only that
//! port in.
//! Never touches sockets or time.

use prtip_store::event::Protocol;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::net::IpAddr;

/// First source port probes use.
pub const SPORT_BASE: u16 = 40960;
/// Number of source ports probes use (a power of two).
pub const SPORT_SPAN: u16 = 16384;

/// The cookie function of one scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cookies {
    k0: u64,
    k1: u64,
    fixed_sport: Option<u16>,
}

/// What one probe carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cookie {
    /// TCP sequence number (and IPv4 identification: its low 16 bits).
    pub seq: u32,
    /// Source port.
    pub sport: u16,
}

impl Cookies {
    /// Cookies keyed by the scan seed.
    pub fn new(seed: u64) -> Cookies {
        Cookies {
            k0: seed ^ 0x636f_6f6b_6965_7321, // "cookies!"
            k1: seed.rotate_left(29) ^ 0x7072_7469_705f_636b,
            fixed_sport: None,
        }
    }

    /// Cookies keyed by the scan seed whose probes all leave from `sport` when given
    /// (`-g`): the sequence number then carries the whole cookie.
    pub fn with_source_port(seed: u64, sport: Option<u16>) -> Cookies {
        Cookies {
            fixed_sport: sport,
            ..Cookies::new(seed)
        }
    }

    /// The source ports probes leave from, `lo..=hi`.
    pub fn source_ports(&self) -> (u16, u16) {
        match self.fixed_sport {
            Some(p) => (p, p),
            None => (SPORT_BASE, SPORT_BASE + (SPORT_SPAN - 1)),
        }
    }

    /// The cookie for a probe to `addr`:`port`/`proto`.
    #[inline]
    pub fn cookie(&self, addr: IpAddr, port: u16, proto: Protocol) -> Cookie {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        match addr {
            IpAddr::V4(a) => h.write_u32(u32::from(a)),
            IpAddr::V6(a) => h.write_u128(u128::from(a)),
        }
        h.write_u16(port);
        h.write_u8(proto as u8);
        let c = h.finish();
        Cookie {
            seq: c as u32,
            sport: self
                .fixed_sport
                .unwrap_or(SPORT_BASE + ((c >> 32) as u16 & (SPORT_SPAN - 1))),
        }
    }

    /// Whether a TCP reply from `addr`:`port` to our `our_port` acknowledging `ack`
    /// answers one of our probes.
    #[inline]
    pub fn check_tcp_ack(&self, addr: IpAddr, port: u16, our_port: u16, ack: u32) -> bool {
        let c = self.cookie(addr, port, Protocol::Tcp);
        c.sport == our_port && c.seq.wrapping_add(1) == ack
    }

    /// Whether a quoted probe (from an ICMP error) is one of ours.
    #[inline]
    pub fn check_quote(
        &self,
        addr: IpAddr,
        port: u16,
        proto: Protocol,
        our_port: u16,
        seq_or_ident: u32,
        ident_only: bool,
    ) -> bool {
        let c = self.cookie(addr, port, proto);
        c.sport == our_port
            && if ident_only {
                c.seq as u16 == seq_or_ident as u16
            } else {
                c.seq == seq_or_ident
            }
    }

    /// Whether a UDP reply from `addr`:`port` to `our_port` answers one of our probes
    /// (only the source port can be checked: 14 bits).
    #[inline]
    pub fn check_udp(&self, addr: IpAddr, port: u16, our_port: u16) -> bool {
        self.cookie(addr, port, Protocol::Udp).sport == our_port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_source_port_keeps_the_cookie_in_the_sequence_number() {
        let free = Cookies::new(77);
        let fixed = Cookies::with_source_port(77, Some(53));
        assert_eq!(fixed.source_ports(), (53, 53));
        assert_eq!(
            free.source_ports(),
            (SPORT_BASE, SPORT_BASE + SPORT_SPAN - 1)
        );
        let a: IpAddr = "198.19.3.4".parse().unwrap();
        let k = fixed.cookie(a, 80, Protocol::Tcp);
        assert_eq!(k.sport, 53);
        assert_eq!(k.seq, free.cookie(a, 80, Protocol::Tcp).seq, "same 32 bits");
        assert!(fixed.check_tcp_ack(a, 80, 53, k.seq.wrapping_add(1)));
        assert!(
            !fixed.check_tcp_ack(a, 80, 54, k.seq.wrapping_add(1)),
            "other port"
        );
        assert!(
            !fixed.check_tcp_ack(a, 80, 53, k.seq),
            "the sequence still decides"
        );
        assert!(fixed.check_quote(a, 80, Protocol::Tcp, 53, k.seq, false));
        assert!(fixed.check_udp(a, 161, 53));
        assert!(!fixed.check_udp(a, 161, 40960));
    }

    #[test]
    fn replies_validate_only_with_the_right_key_and_fields() {
        let c = Cookies::new(1234);
        let a: IpAddr = "198.19.3.4".parse().unwrap();
        let k = c.cookie(a, 80, Protocol::Tcp);
        assert!((SPORT_BASE..SPORT_BASE + SPORT_SPAN).contains(&k.sport));
        assert!(c.check_tcp_ack(a, 80, k.sport, k.seq.wrapping_add(1)));
        assert!(!c.check_tcp_ack(a, 80, k.sport, k.seq), "ack must be seq+1");
        assert!(
            !c.check_tcp_ack(a, 81, k.sport, k.seq.wrapping_add(1)),
            "other port"
        );
        assert!(
            !c.check_tcp_ack(
                "198.19.3.5".parse().unwrap(),
                80,
                k.sport,
                k.seq.wrapping_add(1)
            ),
            "other address"
        );
        assert!(
            !Cookies::new(1235).check_tcp_ack(a, 80, k.sport, k.seq.wrapping_add(1)),
            "other seed"
        );
        assert!(c.check_quote(a, 80, Protocol::Tcp, k.sport, k.seq, false));
        assert!(!c.check_quote(a, 80, Protocol::Tcp, k.sport ^ 1, k.seq, false));
        let u = c.cookie(a, 53, Protocol::Udp);
        assert!(c.check_udp(a, 53, u.sport));
        assert!(c.check_quote(a, 53, Protocol::Udp, u.sport, u.seq & 0xffff, true));
    }

    #[test]
    fn forged_replies_are_rare() {
        // Random (ack, sport) guesses for a fixed target should essentially never pass.
        let c = Cookies::new(99);
        let a: IpAddr = "198.19.0.1".parse().unwrap();
        let mut x: u64 = 0x1234_5678;
        let mut passed = 0;
        for _ in 0..200_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if c.check_tcp_ack(
                a,
                80,
                SPORT_BASE + ((x >> 40) as u16 & (SPORT_SPAN - 1)),
                (x >> 8) as u32,
            ) {
                passed += 1;
            }
        }
        assert_eq!(passed, 0);
    }

    #[test]
    fn source_ports_spread_over_the_range() {
        let c = Cookies::new(7);
        let mut hit = vec![false; SPORT_SPAN as usize];
        for i in 0..65536u32 {
            let k = c.cookie(IpAddr::V4(i.into()), 80, Protocol::Tcp);
            hit[(k.sport - SPORT_BASE) as usize] = true;
        }
        assert!(hit.iter().filter(|h| **h).count() > SPORT_SPAN as usize * 9 / 10);
    }
}
