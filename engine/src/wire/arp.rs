//! ARP for IPv4 over Ethernet (RFC 826): enough to ask for the gateway's MAC.

use super::{get_u16, set_u16, EthernetAddress, Result, WireError};
use std::net::Ipv4Addr;

mod field {
    use super::super::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;
/// ARP request.
pub const OP_REQUEST: u16 = 1;
/// ARP reply.
pub const OP_REPLY: u16 = 2;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wrap, checking length and that it is Ethernet/IPv4.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if get_u16(b, field::HTYPE) != 1
            || get_u16(b, field::PTYPE) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(WireError::Malformed);
        }
        Ok(ArpPacket { buffer })
    }
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }
    /// Operation.
    pub fn operation(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER)
    }
    /// Sender hardware address.
    pub fn sender_hw(&self) -> EthernetAddress {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SHA]);
        EthernetAddress(a)
    }
    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SPA];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::TPA];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Write a request "who has `target` tell `sender_ip`".
    pub fn emit_request(
        &mut self,
        sender_hw: EthernetAddress,
        sender_ip: Ipv4Addr,
        target: Ipv4Addr,
    ) {
        let b = self.buffer.as_mut();
        set_u16(b, field::HTYPE, 1);
        set_u16(b, field::PTYPE, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        set_u16(b, field::OPER, OP_REQUEST);
        b[field::SHA].copy_from_slice(&sender_hw.0);
        b[field::SPA].copy_from_slice(&sender_ip.octets());
        b[field::THA].copy_from_slice(&[0; 6]);
        b[field::TPA].copy_from_slice(&target.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x70, 0x72, 0x74, 0x00, 0x01, 198,
        18, 0, 1, 0, 0, 0, 0, 0, 0, 198, 18, 0, 2,
    ];

    #[test]
    fn request_round_trip() {
        let mut buf = [0u8; 28];
        let me = EthernetAddress([0x02, 0x70, 0x72, 0x74, 0x00, 0x01]);
        ArpPacket::new_unchecked(&mut buf[..]).emit_request(
            me,
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 0, 2),
        );
        assert_eq!(buf, REQUEST);
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sender_hw(), me);
        assert_eq!(p.sender_ip(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(p.target_ip(), Ipv4Addr::new(198, 18, 0, 2));
        let mut bad = REQUEST;
        bad[4] = 8;
        assert_eq!(
            ArpPacket::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
    }
}
