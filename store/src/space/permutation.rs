//! The keyed permutation of the probe index space and its shard slices.
//!
//! Owns: a format-preserving shuffle of `[0, range)` (an unbalanced Feistel network
//! over `Z_a × Z_b` with `a·b ≥ range`, as in masscan's blackrock, plus cycle walking
//! for the few values of `[range, a·b)`), its inverse, and the [`Walk`]: a shard's
//! slice of the shuffled order repeated once per retry pass. A position in the walk is
//! one integer, so a checkpoint is one integer. Never touches addresses or sockets.
//!
//! Round function: a SplitMix64 finalizer of `R ^ k_j`, with the six round keys
//! derived from the seed by SipHash-1-3. It is not a cipher an adversary cannot
//! invert (it needs not be): it spreads probes over targets so that no network sees
//! a burst, and the same seed always gives the same order.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

const ROUNDS: usize = 6;

/// A keyed bijection of `[0, range)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permutation {
    range: u64,
    a: u64,
    b: u64,
    keys: [u64; ROUNDS],
}

#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

fn isqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let mut x = (n as f64).sqrt() as u64;
    while x.saturating_mul(x) > n {
        x -= 1;
    }
    while (x + 1).saturating_mul(x + 1) <= n {
        x += 1;
    }
    x
}

impl Permutation {
    /// A permutation of `[0, range)` keyed by `seed`.
    pub fn new(range: u64, seed: u64) -> Permutation {
        let a = isqrt(range).max(1);
        let b = range.div_ceil(a).max(1);
        let mut keys = [0u64; ROUNDS];
        for (j, k) in keys.iter_mut().enumerate() {
            let mut h = SipHasher13::new_with_keys(seed, 0x7072_7469_705f_7065); // "prtip_pe"
            h.write_u64(j as u64);
            *k = h.finish();
        }
        Permutation { range, a, b, keys }
    }

    /// Size of the permuted domain.
    pub fn range(&self) -> u64 {
        self.range
    }

    #[inline]
    fn f(&self, j: usize, r: u64) -> u64 {
        mix(r ^ self.keys[j])
    }

    #[inline]
    fn encrypt(&self, m: u64) -> u64 {
        let (a, b) = (self.a, self.b);
        let (mut l, mut r) = (m % a, m / a);
        for j in 1..=ROUNDS {
            let md = if j & 1 == 1 { a } else { b };
            let tmp = (l + self.f(j - 1, r) % md) % md;
            l = r;
            r = tmp;
        }
        if ROUNDS & 1 == 1 {
            a * l + r
        } else {
            a * r + l
        }
    }

    #[inline]
    fn decrypt(&self, c: u64) -> u64 {
        let (a, b) = (self.a, self.b);
        let (mut l, mut r) = if ROUNDS & 1 == 1 {
            (c / a, c % a)
        } else {
            (c % a, c / a)
        };
        for j in (1..=ROUNDS).rev() {
            let md = if j & 1 == 1 { a } else { b };
            let prev_r = l;
            let prev_l = (r + md - self.f(j - 1, prev_r) % md) % md;
            l = prev_l;
            r = prev_r;
        }
        a * r + l
    }

    /// Value at position `i` (`i < range`).
    #[inline]
    pub fn shuffle(&self, i: u64) -> u64 {
        debug_assert!(i < self.range);
        let mut c = self.encrypt(i);
        while c >= self.range {
            c = self.encrypt(c);
        }
        c
    }

    /// Position of value `v` (`v < range`): the inverse of [`Permutation::shuffle`].
    #[inline]
    pub fn unshuffle(&self, v: u64) -> u64 {
        debug_assert!(v < self.range);
        let mut c = self.decrypt(v);
        while c >= self.range {
            c = self.decrypt(c);
        }
        c
    }
}

/// A shard's slice of the shuffled order, repeated `passes` times (first sends, then
/// retries). Walk position `p` is pass `p / span`, shuffled position `lo + p % span`.
///
/// A grouped walk ([`Walk::grouped`]) shuffles targets and keeps each target's
/// `group` values together: shuffled position `s` is value
/// `shuffle(s / group) + targets × (s % group)`, so a shard holds every value of
/// its targets (a host discovery sweep's probes of one host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    perm: Permutation,
    lo: u64,
    span: u64,
    passes: u64,
    /// Values kept together per shuffled target (1: a plain walk).
    group: u64,
}

/// Why a shard specification is bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not `i/N`.
    #[error("bad --shard \"{0}\": expected i/N with 0 <= i < N, e.g. 0/3")]
    Syntax(String),
}

/// Parse `i/N` (0-based `i`, as zmap's `--shard`/`--shards`; `1/3` is the second of three).
pub fn parse_shard(s: &str) -> Result<(u32, u32), ShardError> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| ShardError::Syntax(s.into()))?;
    let i: u32 = i.trim().parse().map_err(|_| ShardError::Syntax(s.into()))?;
    let n: u32 = n.trim().parse().map_err(|_| ShardError::Syntax(s.into()))?;
    if n == 0 || i >= n {
        return Err(ShardError::Syntax(s.into()));
    }
    Ok((i, n))
}

impl Walk {
    /// The walk of shard `shard_index` of `shard_count` over `[0, range)`, `passes` ≥ 1 times.
    pub fn new(range: u64, seed: u64, shard_index: u32, shard_count: u32, passes: u64) -> Walk {
        let n = shard_count.max(1) as u128;
        let lo = (range as u128 * shard_index as u128 / n) as u64;
        let hi = (range as u128 * (shard_index as u128 + 1) / n) as u64;
        Walk {
            perm: Permutation::new(range, seed),
            lo,
            span: hi - lo,
            passes: passes.max(1),
            group: 1,
        }
    }

    /// The walk of shard `shard_index` of `shard_count` over the values
    /// `t + targets × g` (`t < targets`, `g < group`) with the targets shuffled
    /// and each target's `group` values consecutive, so that shards split
    /// targets, never a target's values (a `-sn` sweep: every probe of a host
    /// in the host's shard, which alone decides it up or down).
    pub fn grouped(
        targets: u64,
        group: u64,
        seed: u64,
        shard_index: u32,
        shard_count: u32,
        passes: u64,
    ) -> Walk {
        let group = group.max(1);
        let t = Walk::new(targets, seed, shard_index, shard_count, passes);
        Walk {
            lo: t.lo * group,
            span: t.span * group,
            group,
            ..t
        }
    }
    /// Shard `i` of `n` of the same walk (same values, seed, grouping and passes):
    /// what `prtip merge` checks each shard's log against.
    pub fn shard(&self, i: u32, n: u32) -> Walk {
        let targets = self.perm.range() as u128;
        let n = n.max(1) as u128;
        let lo = (targets * i as u128 / n) as u64;
        let hi = (targets * (i as u128 + 1) / n) as u64;
        Walk {
            perm: self.perm.clone(),
            lo: lo * self.group,
            span: (hi - lo) * self.group,
            passes: self.passes,
            group: self.group,
        }
    }
    /// This shard's positions in the shuffled order of one pass (`lo..lo + span`):
    /// the slices of shards `0..N` are consecutive and together `0..range`.
    pub fn slice(&self) -> std::ops::Range<u64> {
        self.lo..self.lo + self.span
    }
    /// Positions in one pass of this shard.
    pub fn span(&self) -> u64 {
        self.span
    }
    /// Number of passes.
    pub fn passes(&self) -> u64 {
        self.passes
    }
    /// Positions in the whole walk (`span × passes`).
    pub fn len(&self) -> u64 {
        self.span * self.passes
    }
    /// Whether the walk is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Index-space value probed at walk position `p`, and its pass.
    #[inline]
    pub fn at(&self, p: u64) -> (u64, u64) {
        let s = self.lo + p % self.span;
        if self.group == 1 {
            return (self.perm.shuffle(s), p / self.span);
        }
        let t = self.perm.shuffle(s / self.group);
        (t + self.perm.range() * (s % self.group), p / self.span)
    }
    /// First-pass walk position of index-space value `v`, if this shard probes it.
    pub fn position_of(&self, v: u64) -> Option<u64> {
        let n = self.perm.range();
        if v >= n.saturating_mul(self.group) {
            return None;
        }
        let q = if self.group == 1 {
            self.perm.unshuffle(v)
        } else {
            self.perm.unshuffle(v % n) * self.group + v / n
        };
        (q >= self.lo && q < self.lo + self.span).then(|| q - self.lo)
    }
    /// The permutation underneath.
    pub fn permutation(&self) -> &Permutation {
        &self.perm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bijection_for_many_sizes() {
        for range in (0..300u64).chain([1021, 4096, 4097, 65536, 16384 * 4 + 1]) {
            let p = Permutation::new(range, 42);
            let mut seen = vec![false; range as usize];
            for i in 0..range {
                let v = p.shuffle(i);
                assert!(v < range, "range {range}: {i} -> {v}");
                assert!(!seen[v as usize], "range {range}: {v} twice");
                seen[v as usize] = true;
                assert_eq!(p.unshuffle(v), i, "range {range}: inverse of {v}");
            }
        }
    }

    #[test]
    fn same_seed_same_order_other_seed_other_order() {
        let a: Vec<u64> = (0..1000)
            .map(|i| Permutation::new(1000, 7).shuffle(i))
            .collect();
        let b: Vec<u64> = (0..1000)
            .map(|i| Permutation::new(1000, 7).shuffle(i))
            .collect();
        let c: Vec<u64> = (0..1000)
            .map(|i| Permutation::new(1000, 8).shuffle(i))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        // it actually shuffles: few fixed points, not the identity
        assert!(
            a.iter()
                .enumerate()
                .filter(|(i, v)| *i as u64 == **v)
                .count()
                < 20
        );
    }

    #[test]
    fn large_ranges_stay_in_range_and_invert() {
        for range in [(1u64 << 32) * 65536, (1 << 40) + 12345, u32::MAX as u64 * 3] {
            let p = Permutation::new(range, 1);
            for i in (0..range).step_by((range / 1000) as usize).take(1000) {
                let v = p.shuffle(i);
                assert!(v < range);
                assert_eq!(p.unshuffle(v), i);
            }
        }
    }

    #[test]
    fn shards_partition_the_walk() {
        let range = 1000;
        let full: Vec<u64> = {
            let w = Walk::new(range, 5, 0, 1, 1);
            (0..w.len()).map(|p| w.at(p).0).collect()
        };
        let mut union = Vec::new();
        for i in 0..3 {
            let w = Walk::new(range, 5, i, 3, 1);
            assert_eq!(w, Walk::new(range, 5, 0, 1, 1).shard(i, 3));
            for p in 0..w.len() {
                let v = w.at(p).0;
                assert_eq!(w.position_of(v), Some(p));
                union.push(v);
            }
        }
        assert_eq!(union, full, "shards are consecutive slices of one walk");
        let mut s = union.clone();
        s.sort_unstable();
        s.dedup();
        assert_eq!(s.len(), range as usize, "no overlap, nothing missing");
    }

    #[test]
    fn a_grouped_walk_keeps_a_targets_values_in_one_shard() {
        let (targets, group) = (100u64, 3u64);
        let full: Vec<u64> = {
            let w = Walk::grouped(targets, group, 5, 0, 1, 1);
            assert_eq!(w.len(), targets * group);
            (0..w.len()).map(|p| w.at(p).0).collect()
        };
        let mut union = Vec::new();
        let mut shard_of = vec![None; targets as usize];
        for i in 0..3u32 {
            let w = Walk::grouped(targets, group, 5, i, 3, 2);
            assert_eq!(w, Walk::grouped(targets, group, 5, 0, 1, 2).shard(i, 3));
            for p in 0..w.span() {
                let v = w.at(p).0;
                assert!(v < targets * group);
                assert_eq!(w.position_of(v), Some(p));
                assert_eq!(w.at(p + w.span()), (v, 1), "the retry pass repeats it");
                let t = (v % targets) as usize;
                assert!(shard_of[t].is_none_or(|s| s == i), "target {t} split");
                shard_of[t] = Some(i);
                union.push(v);
            }
            // A value of a later shard is not this shard's.
            if let Some(other) = (0..targets * group).find(|v| !union.contains(v)) {
                assert_eq!(w.position_of(other), None);
            }
        }
        assert_eq!(union, full, "shards are consecutive slices of one walk");
        let mut s = union.clone();
        s.sort_unstable();
        s.dedup();
        assert_eq!(
            s.len() as u64,
            targets * group,
            "no overlap, nothing missing"
        );
        assert_eq!(
            Walk::grouped(targets, group, 5, 0, 1, 1).position_of(targets * group),
            None
        );
    }

    #[test]
    fn passes_repeat_the_slice() {
        let w = Walk::new(10, 3, 0, 1, 3);
        assert_eq!(w.len(), 30);
        for p in 0..10 {
            assert_eq!(w.at(p).0, w.at(p + 10).0);
            assert_eq!(w.at(p + 20), (w.at(p).0, 2));
        }
    }

    #[test]
    fn shard_syntax() {
        assert_eq!(parse_shard("1/3"), Ok((1, 3)));
        for bad in ["3/3", "1", "a/3", "1/0", "-1/3"] {
            assert_eq!(
                parse_shard(bad).unwrap_err().to_string(),
                format!("bad --shard \"{bad}\": expected i/N with 0 <= i < N, e.g. 0/3")
            );
        }
    }
}
