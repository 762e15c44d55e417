//! Vectors are stored several to an LMDB value ("chunk"), sized so that the value fills its
//! overflow pages almost exactly. One vector per value, as hannoy does, wastes up to a page per
//! vector once a vector no longer fits inline (about 25% of the disk at 768 dimensions).

/// LMDB's page size on the machines we build for; only the packing efficiency depends on it.
pub(crate) const PAGE_SIZE: usize = 4096;
/// Header LMDB puts at the start of an overflow run.
const OVERFLOW_HEADER: usize = 16;
/// Longest overflow run we allow: rewriting a chunk costs this much I/O on every insert into it.
const MAX_PAGES: usize = 16;
/// Stop at the first run this full.
const GOOD_ENOUGH: f64 = 0.97;

/// How many vectors of `vector_bytes` one chunk holds.
pub(crate) fn vectors_per_chunk(vector_bytes: usize) -> usize {
    let mut best = (0.0f64, 1usize);
    for pages in 1..=MAX_PAGES {
        let capacity = pages * PAGE_SIZE - OVERFLOW_HEADER;
        let count = capacity / vector_bytes;
        if count == 0 {
            continue;
        }
        let fill = (count * vector_bytes) as f64 / (pages * PAGE_SIZE) as f64;
        if fill >= GOOD_ENOUGH {
            return count;
        }
        if fill > best.0 {
            best = (fill, count);
        }
    }
    // Vectors larger than MAX_PAGES pages: one per chunk, LMDB sizes the run itself.
    best.1.max(1)
}

/// Chunk holding `id`, and the vector's byte range inside it.
#[inline]
pub(crate) fn locate(
    id: u32,
    per_chunk: usize,
    vector_bytes: usize,
) -> (u32, std::ops::Range<usize>) {
    let chunk = id / per_chunk as u32;
    let slot = (id % per_chunk as u32) as usize;
    (chunk, slot * vector_bytes..(slot + 1) * vector_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fill_their_pages() {
        for bytes in [8usize, 64, 512, 1536, 3072, 6144, 12288, 4 * 4000] {
            let per = vectors_per_chunk(bytes);
            let used = per * bytes;
            let pages = (used + OVERFLOW_HEADER).div_ceil(PAGE_SIZE);
            let fill = used as f64 / (pages * PAGE_SIZE) as f64;
            assert!(fill > 0.9, "{bytes} bytes: {per} per chunk fills {fill:.3}");
        }
    }
}
