//! The Internet checksum (RFC 1071), its pseudo-headers, and incremental update (RFC 1624).
//!
//! Owns arithmetic only; never reads packets beyond the slices it is given.

use std::net::Ipv4Addr;

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
