//! IPv6 Neighbor Discovery (RFC 4861 §4.3, §4.4): the Neighbor Solicitation and
//! Neighbor Advertisement ICMPv6 messages with their link-layer address options,
//! enough to ask for a next hop's MAC the way ARP does for IPv4. Also the
//! solicited-node multicast address (RFC 4291 §2.7.1) and its Ethernet group
//! address (RFC 2464 §7) the solicitation goes to.
//!
//! The view starts at the ICMPv6 header (the IPv6 header's payload); the
//! checksum covers the IPv6 pseudo-header, so filling and verifying it take the
//! source and destination addresses.

use super::{checksum, get_u16, get_u32, set_u16, set_u32, EthernetAddress, Result, WireError};
use std::net::Ipv6Addr;

mod field {
    use super::super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// R, S, O flags of an advertisement in the top bits; reserved in a solicitation.
    pub const FLAGS: Field = 4..8;
    pub const TARGET: Field = 8..24;
    pub const OPTIONS: usize = 24;
}

/// Length of a solicitation or advertisement without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Length of a link-layer address option for Ethernet (type, length in 8-byte units, MAC).
pub const LL_OPTION_LEN: usize = 8;
/// ICMPv6 type of a Neighbor Solicitation.
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;
/// Option type: source link-layer address.
pub const OPT_SOURCE_LL_ADDR: u8 = 1;
/// Option type: target link-layer address.
pub const OPT_TARGET_LL_ADDR: u8 = 2;
/// Hop limit every Neighbor Discovery message carries (and receivers check).
pub const HOP_LIMIT: u8 = 255;

/// Advertisement flag: the sender is a router.
pub const FLAG_ROUTER: u32 = 0x8000_0000;
/// Advertisement flag: sent in answer to a solicitation.
pub const FLAG_SOLICITED: u32 = 0x4000_0000;
/// Advertisement flag: override an existing cache entry.
pub const FLAG_OVERRIDE: u32 = 0x2000_0000;

/// The solicited-node multicast address of `addr`: `ff02::1:ff` + its low 24 bits.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet group address of an IPv6 multicast address: `33:33` + its low 32 bits.
pub fn multicast_mac(group: Ipv6Addr) -> EthernetAddress {
    let o = group.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// A view of a Neighbor Solicitation or Advertisement.
#[derive(Debug, Clone)]
pub struct NdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NdpPacket<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        NdpPacket { buffer }
    }
    /// Wrap, checking the length, that it is a solicitation or an advertisement
    /// with code 0, and that every option has a non-zero length inside the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = NdpPacket { buffer };
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if !matches!(p.msg_type(), TYPE_NEIGHBOR_SOLICIT | TYPE_NEIGHBOR_ADVERT)
            || p.msg_code() != 0
        {
            return Err(WireError::Malformed);
        }
        let mut at = HEADER_LEN;
        while at < b.len() {
            if at + 2 > b.len() {
                return Err(WireError::Truncated);
            }
            let len = b[at + 1] as usize * 8;
            if len == 0 {
                return Err(WireError::Malformed);
            }
            if at + len > b.len() {
                return Err(WireError::Truncated);
            }
            at += len;
        }
        Ok(p)
    }
    /// ICMPv6 type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// ICMPv6 code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The 32 bits after the checksum: `FLAG_*` of an advertisement.
    pub fn flags(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::FLAGS)
    }
    /// Target address (the address asked about, or advertised).
    pub fn target_addr(&self) -> Ipv6Addr {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::TARGET]);
        Ipv6Addr::from(a)
    }
    /// The MAC in the first link-layer address option of `kind`
    /// ([`OPT_SOURCE_LL_ADDR`] or [`OPT_TARGET_LL_ADDR`]) that holds 6 bytes.
    /// Call on a checked view only.
    pub fn ll_option(&self, kind: u8) -> Option<EthernetAddress> {
        let b = self.buffer.as_ref();
        let mut at = HEADER_LEN;
        while at + 2 <= b.len() {
            let len = b[at + 1] as usize * 8;
            if len == 0 || at + len > b.len() {
                return None;
            }
            if b[at] == kind && len == LL_OPTION_LEN {
                let mut m = [0; 6];
                m.copy_from_slice(&b[at + 2..at + 8]);
                return Some(EthernetAddress(m));
            }
            at += len;
        }
        None
    }
    /// Whether the checksum is right for a message from `src` to `dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, 58, b.len() as u32);
        checksum::finish(ph, b) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NdpPacket<T> {
    /// Set the ICMPv6 type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    /// Set the ICMPv6 code.
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    /// Set the flags / reserved word.
    pub fn set_flags(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::FLAGS, v)
    }
    /// Set the target address.
    pub fn set_target_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&a.octets())
    }
    /// Write one Ethernet link-layer address option right after the fixed part.
    pub fn set_ll_option(&mut self, kind: u8, mac: EthernetAddress) {
        let b = &mut self.buffer.as_mut()[HEADER_LEN..HEADER_LEN + LL_OPTION_LEN];
        b[0] = kind;
        b[1] = (LL_OPTION_LEN / 8) as u8;
        b[2..].copy_from_slice(&mac.0);
    }
    /// Compute and write the checksum for a message from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let len = self.buffer.as_ref().len() as u32;
        let ph = checksum::pseudo_header_v6(src, dst, 58, len);
        let c = checksum::finish(ph, self.buffer.as_ref());
        set_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// A Neighbor Solicitation or Advertisement, as far as resolving a MAC needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpRepr {
    /// "Who has `target_addr`?", with the asker's MAC.
    NeighborSolicit {
        /// Address asked about.
        target_addr: Ipv6Addr,
        /// Source link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
    /// "`target_addr` is at `lladdr`."
    NeighborAdvert {
        /// `FLAG_ROUTER | FLAG_SOLICITED | FLAG_OVERRIDE` as set.
        flags: u32,
        /// Address advertised.
        target_addr: Ipv6Addr,
        /// Target link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
}

impl NdpRepr {
    /// Read a checked message sent from `src` to `dst`; a wrong checksum is
    /// `Malformed` (ICMPv6 checksums are always computed in full by the sender).
    pub fn parse<T: AsRef<[u8]>>(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        p: &NdpPacket<T>,
    ) -> Result<NdpRepr> {
        if !p.verify_checksum(src, dst) {
            return Err(WireError::Malformed);
        }
        Ok(match p.msg_type() {
            TYPE_NEIGHBOR_SOLICIT => NdpRepr::NeighborSolicit {
                target_addr: p.target_addr(),
                lladdr: p.ll_option(OPT_SOURCE_LL_ADDR),
            },
            TYPE_NEIGHBOR_ADVERT => NdpRepr::NeighborAdvert {
                flags: p.flags() & (FLAG_ROUTER | FLAG_SOLICITED | FLAG_OVERRIDE),
                target_addr: p.target_addr(),
                lladdr: p.ll_option(OPT_TARGET_LL_ADDR),
            },
            _ => return Err(WireError::Malformed),
        })
    }
    /// Length of the message this repr emits.
    pub fn buffer_len(&self) -> usize {
        let (NdpRepr::NeighborSolicit { lladdr, .. } | NdpRepr::NeighborAdvert { lladdr, .. }) =
            self;
        HEADER_LEN + if lladdr.is_some() { LL_OPTION_LEN } else { 0 }
    }
    /// Write the message from `src` to `dst` with its checksum; `p` must be
    /// exactly `buffer_len()` long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        p: &mut NdpPacket<T>,
    ) -> Result<()> {
        if p.buffer.as_ref().len() != self.buffer_len() {
            return Err(WireError::Truncated);
        }
        let (msg_type, flags, target, opt, lladdr) = match *self {
            NdpRepr::NeighborSolicit {
                target_addr,
                lladdr,
            } => (
                TYPE_NEIGHBOR_SOLICIT,
                0,
                target_addr,
                OPT_SOURCE_LL_ADDR,
                lladdr,
            ),
            NdpRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            } => (
                TYPE_NEIGHBOR_ADVERT,
                flags,
                target_addr,
                OPT_TARGET_LL_ADDR,
                lladdr,
            ),
        };
        p.set_msg_type(msg_type);
        p.set_msg_code(0);
        p.set_flags(flags);
        p.set_target_addr(target);
        if let Some(mac) = lladdr {
            p.set_ll_option(opt, mac);
        }
        p.fill_checksum(src, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// 2001:db8:0:1::1 (02:70:72:74:00:01) asks ff02::1:ff00:2 for 2001:db8:0:1::2.
    /// Checksum computed independently (Python, RFC 1071 over the pseudo-header).
    static SOLICIT: [u8; 32] = [
        0x87, 0x00, 0xa9, 0x40, 0, 0, 0, 0, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        0x01, 0x01, 0x02, 0x70, 0x72, 0x74, 0x00, 0x01,
    ];
    /// 2001:db8:0:1::2 (02:70:72:74:00:02) answers 2001:db8:0:1::1, flags S|O.
    static ADVERT: [u8; 32] = [
        0x88, 0x00, 0x17, 0x8a, 0x60, 0, 0, 0, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        0x02, 0x01, 0x02, 0x70, 0x72, 0x74, 0x00, 0x02,
    ];

    #[test]
    fn solicited_node_group_and_its_mac() {
        let g = solicited_node(a("2001:db8:0:1::12:3456"));
        assert_eq!(g, a("ff02::1:ff12:3456"));
        assert_eq!(multicast_mac(g).to_string(), "33:33:ff:12:34:56");
    }

    #[test]
    fn solicitation_round_trip() {
        let (src, dst) = (a("2001:db8:0:1::1"), a("ff02::1:ff00:2"));
        let repr = NdpRepr::NeighborSolicit {
            target_addr: a("2001:db8:0:1::2"),
            lladdr: Some(EthernetAddress([2, 0x70, 0x72, 0x74, 0, 1])),
        };
        let p = NdpPacket::new_checked(&SOLICIT[..]).unwrap();
        assert_eq!(NdpRepr::parse(src, dst, &p).unwrap(), repr);
        let mut buf = [0u8; 32];
        assert_eq!(repr.buffer_len(), 32);
        repr.emit(src, dst, &mut NdpPacket::new_unchecked(&mut buf[..]))
            .unwrap();
        assert_eq!(buf, SOLICIT);
    }

    #[test]
    fn advertisement_round_trip() {
        let (src, dst) = (a("2001:db8:0:1::2"), a("2001:db8:0:1::1"));
        let repr = NdpRepr::NeighborAdvert {
            flags: FLAG_SOLICITED | FLAG_OVERRIDE,
            target_addr: a("2001:db8:0:1::2"),
            lladdr: Some(EthernetAddress([2, 0x70, 0x72, 0x74, 0, 2])),
        };
        let p = NdpPacket::new_checked(&ADVERT[..]).unwrap();
        assert_eq!(NdpRepr::parse(src, dst, &p).unwrap(), repr);
        assert_eq!(p.ll_option(OPT_SOURCE_LL_ADDR), None);
        let mut buf = [0u8; 32];
        repr.emit(src, dst, &mut NdpPacket::new_unchecked(&mut buf[..]))
            .unwrap();
        assert_eq!(buf, ADVERT);
    }

    #[test]
    fn bad_checksum_type_and_options_are_refused() {
        let (src, dst) = (a("2001:db8:0:1::2"), a("2001:db8:0:1::1"));
        let mut b = ADVERT;
        b[31] ^= 1;
        let p = NdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(NdpRepr::parse(src, dst, &p), Err(WireError::Malformed));
        let mut b = ADVERT;
        b[0] = 128; // echo request
        assert_eq!(
            NdpPacket::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut b = ADVERT;
        b[25] = 0; // option of length 0 would loop forever
        assert_eq!(
            NdpPacket::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut b = ADVERT;
        b[25] = 2; // option longer than the packet
        assert_eq!(
            NdpPacket::new_checked(&b[..]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            NdpPacket::new_checked(&ADVERT[..23]).unwrap_err(),
            WireError::Truncated
        );
        // Without options: no MAC.
        let p = NdpPacket::new_checked(&ADVERT[..24]).unwrap();
        assert_eq!(p.ll_option(OPT_TARGET_LL_ADDR), None);
    }
}
