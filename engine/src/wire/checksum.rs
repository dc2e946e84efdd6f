//! The Internet checksum (RFC 1071), its pseudo-headers, and incremental update (RFC 1624).
//!
//! Owns arithmetic only; never reads packets beyond the slices it is given.

use std::net::{IpAddr, Ipv4Addr};

/// One's-complement sum of `data` as big-endian 16-bit words (odd tail padded with 0),
/// not yet folded.
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u64) << 8;
    }
    fold64(acc)
}

fn fold64(mut acc: u64) -> u32 {
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Fold a 32-bit one's-complement accumulator into 16 bits.
#[inline]
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for `data` plus an extra accumulated `extra` sum.
pub fn finish(extra: u32, data: &[u8]) -> u16 {
    !fold(fold(sum(data)) as u32 + fold(extra) as u32)
}

/// Sum of the IPv4 pseudo-header used by TCP and UDP.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let s = u32::from(src);
    let d = u32::from(dst);
    (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + protocol as u32 + length as u32
}

/// Sum of the IPv6 pseudo-header used by TCP and UDP.
pub fn pseudo_header_v6(
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    protocol: u8,
    length: u32,
) -> u32 {
    let mut acc = fold(sum(&src.octets())) as u32 + fold(sum(&dst.octets())) as u32;
    acc += (length >> 16) + (length & 0xffff) + protocol as u32;
    acc
}

/// Sum of the pseudo-header of either family: [`pseudo_header_v4`] or
/// [`pseudo_header_v6`] by the addresses' family. Mixed families have no
/// pseudo-header; `None` then.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, length: u32) -> Option<u32> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(pseudo_header_v4(
            s,
            d,
            protocol,
            u16::try_from(length).ok()?,
        )),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(pseudo_header_v6(s, d, protocol, length)),
        _ => None,
    }
}

/// Whether `segment` (checksum field included) sums to all ones over the
/// pseudo-header of `src`/`dst` (either family).
pub fn verify_l4(src: IpAddr, dst: IpAddr, protocol: u8, segment: &[u8]) -> bool {
    pseudo_header(src, dst, protocol, segment.len() as u32)
        .is_some_and(|ph| fold(fold(sum(segment)) as u32 + fold(ph) as u32) == 0xffff)
}

/// The checksum field value of `segment` (its checksum field zero) over the
/// pseudo-header of `src`/`dst` (either family); `None` for mixed families.
pub fn l4_checksum(src: IpAddr, dst: IpAddr, protocol: u8, segment: &[u8]) -> Option<u16> {
    pseudo_header(src, dst, protocol, segment.len() as u32).map(|ph| finish(ph, segment))
}

/// RFC 1624 eqn. 3 for a checksum computed while some 16-bit words were zero:
/// `base` is `!checksum` of that frame (the folded sum), `added` the sum of the
/// words now written where zeros were. Returns the new checksum field value.
#[inline]
pub fn patch_from_zero(base: u16, added: u32) -> u16 {
    !fold(base as u32 + fold(added) as u32)
}

/// RFC 1624 eqn. 3 general case: replace one word `old` with `new` in a frame whose
/// checksum field is `check`.
#[inline]
pub fn update_word(check: u16, old: u16, new: u16) -> u16 {
    !fold((!check) as u32 + (!old) as u32 + new as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_family_pseudo_header_matches_the_per_family_one() {
        let (s4, d4) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 19, 0, 2));
        assert_eq!(
            pseudo_header(s4.into(), d4.into(), 6, 24),
            Some(pseudo_header_v4(s4, d4, 6, 24))
        );
        let (s6, d6): (std::net::Ipv6Addr, std::net::Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        assert_eq!(
            pseudo_header(s6.into(), d6.into(), 6, 70_000),
            Some(pseudo_header_v6(s6, d6, 6, 70_000))
        );
        assert_eq!(pseudo_header(s4.into(), d6.into(), 6, 24), None);
        assert_eq!(
            pseudo_header(s4.into(), d4.into(), 6, 70_000),
            None,
            "no v4 jumbo"
        );
    }

    #[test]
    fn l4_checksum_then_verify_for_both_families() {
        let mut seg = *b"\x9c\x40\x00\x50\xde\xad\xbe\xef\x00\x00\x00\x00\x60\x02\x04\x00\x00\x00\x00\x00\x02\x04\x05\xb4";
        for (s, d) in [
            ("198.18.0.1", "198.19.0.7"),
            ("2001:db8::1", "2001:db8:0:1::7"),
        ] {
            let (s, d): (IpAddr, IpAddr) = (s.parse().unwrap(), d.parse().unwrap());
            seg[16] = 0;
            seg[17] = 0;
            let c = l4_checksum(s, d, 6, &seg).unwrap();
            seg[16..18].copy_from_slice(&c.to_be_bytes());
            assert!(verify_l4(s, d, 6, &seg), "{s} -> {d}");
            seg[5] ^= 1;
            assert!(!verify_l4(s, d, 6, &seg), "{s} -> {d} corrupted");
            seg[5] ^= 1;
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(finish(0, &data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut data = [0x45u8, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06];
        let check = finish(0, &data);
        let old = u16::from_be_bytes([data[4], data[5]]);
        data[4] = 0xbe;
        data[5] = 0xef;
        assert_eq!(update_word(check, old, 0xbeef), finish(0, &data));
    }

    #[test]
    fn patch_from_zero_matches_recompute() {
        let mut data = [0x45u8, 0x00, 0x00, 0x28, 0, 0, 0x40, 0x00, 0x40, 0x06, 0, 0];
        let base = !finish(0, &data);
        data[10] = 0xc6;
        data[11] = 0x13;
        data[4] = 0x01;
        assert_eq!(patch_from_zero(base, 0xc613 + 0x0100), finish(0, &data));
    }
}
