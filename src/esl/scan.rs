//! Finding the structural bytes of an event in one vectorised pass.
//!
//! Indexing an event means finding a few kinds of byte in kilobytes of text:
//! `:` and LF in plain events, `"` and `\` in JSON ones. Calling a search
//! function per match pays its set-up cost hundreds of times per event. This
//! module instead compares 16 bytes at a time against both bytes (SSE2, which
//! every x86_64 CPU has), keeps the result as a bitmask, and hands out the
//! positions by walking the set bits, the technique simdjson uses for its
//! structural index. Elsewhere a portable scalar loop gives the same answers.
//!
//! It knows nothing about ESL: it only finds two byte values, in order.

/// Positions of two byte values in a haystack, in increasing order.
pub(crate) struct Positions<'a> {
    hay: &'a [u8],
    a: u8,
    b: u8,
    /// Offset of the block `mask` describes.
    base: usize,
    /// Unvisited matches of the current block, bit i = `base + i`.
    mask: u64,
}

const BLOCK: usize = 64;

impl<'a> Positions<'a> {
    /// Positions of `a` or `b` in `hay`.
    pub(crate) fn new(hay: &'a [u8], a: u8, b: u8) -> Positions<'a> {
        let mask = block_mask(hay, 0, a, b);
        Positions {
            hay,
            a,
            b,
            base: 0,
            mask,
        }
    }

    /// The first position at or after `from`.
    #[inline(always)]
    pub(crate) fn next_from(&mut self, from: usize) -> Option<usize> {
        if from >= self.base + BLOCK {
            // Jump straight to the block holding `from`.
            self.base = from - from % BLOCK;
            if self.base >= self.hay.len() {
                self.mask = 0;
                return None;
            }
            self.mask = block_mask(self.hay, self.base, self.a, self.b);
        }
        if from > self.base {
            let skip = from - self.base;
            self.mask &= u64::MAX.checked_shl(skip as u32).unwrap_or(0);
        }
        self.next()
    }
}

impl Iterator for Positions<'_> {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        loop {
            if self.mask != 0 {
                let bit = self.mask.trailing_zeros() as usize;
                self.mask &= self.mask - 1;
                return Some(self.base + bit);
            }
            self.base += BLOCK;
            if self.base >= self.hay.len() {
                return None;
            }
            self.mask = block_mask(self.hay, self.base, self.a, self.b);
        }
    }
}

/// Bit i set when `hay[base + i]` is `a` or `b`, for up to 64 bytes.
#[inline]
fn block_mask(hay: &[u8], base: usize, a: u8, b: u8) -> u64 {
    let block = &hay[base.min(hay.len())..hay.len().min(base + BLOCK)];
    if block.len() == BLOCK {
        full_block_mask(block.try_into().expect("64 bytes"), a, b)
    } else {
        scalar_mask(block, a, b)
    }
}

fn scalar_mask(block: &[u8], a: u8, b: u8) -> u64 {
    block
        .iter()
        .enumerate()
        .filter(|(_, &x)| x == a || x == b)
        .fold(0u64, |m, (i, _)| m | 1 << i)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn full_block_mask(block: &[u8; BLOCK], a: u8, b: u8) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are
    // always available; every load reads 16 bytes inside the 64-byte array.
    unsafe {
        let va = _mm_set1_epi8(a as i8);
        let vb = _mm_set1_epi8(b as i8);
        let mut mask = 0u64;
        for i in 0..4 {
            let chunk = _mm_loadu_si128(block.as_ptr().add(i * 16) as *const __m128i);
            let hits = _mm_or_si128(_mm_cmpeq_epi8(chunk, va), _mm_cmpeq_epi8(chunk, vb));
            mask |= (_mm_movemask_epi8(hits) as u16 as u64) << (i * 16);
        }
        mask
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn full_block_mask(block: &[u8; BLOCK], a: u8, b: u8) -> u64 {
    scalar_mask(block, a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(hay: &[u8], a: u8, b: u8) -> Vec<usize> {
        hay.iter()
            .enumerate()
            .filter(|(_, &x)| x == a || x == b)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn finds_both_bytes_across_blocks() {
        let mut hay = vec![b'x'; 200];
        for i in [0, 15, 16, 63, 64, 65, 127, 128, 199] {
            hay[i] = if i % 2 == 0 { b':' } else { b'\n' };
        }
        assert_eq!(
            Positions::new(&hay, b':', b'\n').collect::<Vec<_>>(),
            naive(&hay, b':', b'\n')
        );
        assert_eq!(Positions::new(&[], b':', b'\n').next(), None);
    }

    #[test]
    fn next_from_skips_ahead() {
        let hay: Vec<u8> = (0..300)
            .map(|i| if i % 7 == 0 { b'"' } else { b'a' })
            .collect();
        let mut p = Positions::new(&hay, b'"', b'\\');
        assert_eq!(p.next_from(1), Some(7));
        assert_eq!(p.next_from(150), Some(154));
        assert_eq!(p.next(), Some(161));
        assert_eq!(p.next_from(298), None);
        assert_eq!(p.next_from(1000), None);
    }

    proptest! {
        #[test]
        fn agrees_with_a_naive_scan(hay in proptest::collection::vec(prop_oneof![Just(b':'), Just(b'\n'), any::<u8>()], 0..400), from in 0usize..450) {
            prop_assert_eq!(Positions::new(&hay, b':', b'\n').collect::<Vec<_>>(), naive(&hay, b':', b'\n'));
            let want: Vec<usize> = naive(&hay, b':', b'\n').into_iter().filter(|&i| i >= from).collect();
            let mut p = Positions::new(&hay, b':', b'\n');
            let mut got = Vec::new();
            let mut next = p.next_from(from);
            while let Some(i) = next { got.push(i); next = p.next(); }
            prop_assert_eq!(got, want);
        }
    }
}
