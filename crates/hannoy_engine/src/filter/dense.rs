//! A filter's allowed items as one bit per item id, for walks that test every neighbour they
//! meet against the filter: a two-hop walk tests about `m0` ids for each list it looks through.
//! A roaring bitmap answers such a test with a search over its containers and, where the filter
//! keeps fewer than 4,096 ids in a range of 65,536, a binary search in an array: several times
//! the cost of a bit test. Iterating the bitmap to set the bits costs more than the tests save
//! once a filter keeps many ids (docs/benchmarks.md, "A filter's bits for the walk"), so the
//! bits are read from the bitmap's serialized form (RoaringFormatSpec), whose dense containers
//! are the bit words themselves.

use roaring::RoaringBitmap;

/// The serialized form without run containers: the cookie, then the container count.
const COOKIE_NO_RUNS: u32 = 12346;
/// The form with run containers: the cookie in the low half, the count less one above it.
const COOKIE_RUNS: u16 = 12347;
/// With run containers, a bitmap of fewer containers than this has no offset header.
const NO_OFFSET_THRESHOLD: usize = 4;
/// Ids a container covers, and the words of a dense one.
const CONTAINER_IDS: usize = 1 << 16;
const CONTAINER_WORDS: usize = CONTAINER_IDS / 64;
/// Most ids an array container holds; more are kept dense.
const ARRAY_MAX: usize = 4096;

pub(crate) struct DenseBits {
    words: Vec<u64>,
}

impl DenseBits {
    /// The ids of `bitmap` below `universe`.
    pub fn new(bitmap: &RoaringBitmap, universe: u32) -> DenseBits {
        let mut words = vec![0u64; (universe as usize).div_ceil(64)];
        let mut serialized = Vec::with_capacity(bitmap.serialized_size());
        let read = bitmap.serialize_into(&mut serialized).is_ok()
            && read_serialized(&serialized, &mut words).is_some();
        if !read {
            // Not a form this reader knows: set the bits one id at a time.
            debug_assert!(false, "unreadable serialized bitmap");
            words.fill(0);
            for id in bitmap.iter() {
                set(&mut words, id as usize);
            }
        }
        // A dense container copied whole may reach past the universe within its last word.
        if !universe.is_multiple_of(64) {
            if let Some(last) = words.last_mut() {
                *last &= (1u64 << (universe % 64)) - 1;
            }
        }
        DenseBits { words }
    }

    #[inline]
    pub fn contains(&self, id: u32) -> bool {
        self.words
            .get(id as usize / 64)
            .is_some_and(|w| w >> (id % 64) & 1 == 1)
    }
}

#[inline]
fn set(words: &mut [u64], id: usize) {
    if let Some(w) = words.get_mut(id / 64) {
        *w |= 1 << (id % 64);
    }
}

/// Little-endian reads from a byte slice, `None` past its end.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// Sets the bits of the ids in `serialized` (a bitmap's portable serialized form); `None` if it
/// is not that form.
fn read_serialized(serialized: &[u8], words: &mut [u64]) -> Option<()> {
    let mut bytes = Bytes(serialized);
    let cookie = bytes.u32()?;
    let (count, runs) = if cookie == COOKIE_NO_RUNS {
        (bytes.u32()? as usize, None)
    } else if cookie as u16 == COOKIE_RUNS {
        let count = (cookie >> 16) as usize + 1;
        (count, Some(bytes.take(count.div_ceil(8))?))
    } else {
        return None;
    };
    let descriptions = bytes.take(count.checked_mul(4)?)?;
    if runs.is_none() || count >= NO_OFFSET_THRESHOLD {
        bytes.take(count.checked_mul(4)?)?;
    }
    for (i, description) in descriptions.chunks_exact(4).enumerate() {
        let key = u16::from_le_bytes([description[0], description[1]]) as usize;
        let cardinality = u16::from_le_bytes([description[2], description[3]]) as usize + 1;
        let base = key * CONTAINER_IDS;
        let is_run = runs.is_some_and(|r| r[i / 8] >> (i % 8) & 1 == 1);
        if is_run {
            for _ in 0..bytes.u16()? {
                let start = base + bytes.u16()? as usize;
                let last = start + bytes.u16()? as usize;
                for id in start..=last {
                    set(words, id);
                }
            }
        } else if cardinality <= ARRAY_MAX {
            for _ in 0..cardinality {
                set(words, base + bytes.u16()? as usize);
            }
        } else {
            let dense = bytes.take(CONTAINER_WORDS * 8)?;
            let first = key * CONTAINER_WORDS;
            let target = words.get_mut(first..).unwrap_or_default();
            for (word, chunk) in target.iter_mut().zip(dense.chunks_exact(8)) {
                *word = u64::from_le_bytes(chunk.try_into().ok()?);
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bitmap: &RoaringBitmap, universe: u32) {
        let dense = DenseBits::new(bitmap, universe);
        for id in 0..universe + 70_000 {
            assert_eq!(
                dense.contains(id),
                id < universe && bitmap.contains(id),
                "id {id}"
            );
        }
    }

    #[test]
    fn every_kind_of_container_reads_as_the_same_ids() {
        let universe = 300_000;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = |keep: f64| {
            (0..universe)
                .filter(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 10_000) as f64 / 10_000.0 < keep
                })
                .collect::<RoaringBitmap>()
        };
        // Arrays (2%), dense containers (40%), both in one bitmap.
        let sparse = random(0.02);
        let dense = random(0.4);
        let mut mixed = sparse.clone();
        mixed.extend(dense.iter().filter(|&id| id >= 131_072));
        // Runs: whole ranges, then optimized into run containers; with fewer than four
        // containers the form has no offsets.
        let mut runs = RoaringBitmap::new();
        runs.insert_range(10..70_000);
        runs.insert_range(200_000..200_010);
        runs.optimize();
        let mut few_runs = RoaringBitmap::new();
        few_runs.insert_range(5..40_000);
        few_runs.optimize();
        for bitmap in [&runs, &few_runs] {
            let mut serialized = Vec::new();
            bitmap.serialize_into(&mut serialized).unwrap();
            assert_eq!(
                u16::from_le_bytes([serialized[0], serialized[1]]),
                COOKIE_RUNS
            );
        }
        let mut runs_and_more = runs.clone();
        runs_and_more.extend(sparse.iter().filter(|&id| id >= 70_000));
        runs_and_more.optimize();
        for bitmap in [
            RoaringBitmap::new(),
            sparse,
            dense,
            mixed,
            runs,
            few_runs,
            runs_and_more,
        ] {
            check(&bitmap, universe);
            // A universe smaller than the bitmap's ids leaves the later ones out.
            check(&bitmap, 100_000);
        }
    }
}
