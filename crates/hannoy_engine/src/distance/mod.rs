//! Metrics, the vectors they take, and how a vector is checked and prepared before it is stored
//! or searched for.
//!
//! Inside the engine every vector is a byte slice of `vector_bytes` length holding native-endian
//! `f32` elements (float metrics), IEEE half floats (their `Half` forms) or `u64` words
//! (Hamming). Cosine vectors in f32 are stored normalised, so the cosine distance is `1 - dot`
//! and costs one kernel call; in half floats they are stored as given (normalising would round
//! them again) and the kernel sums the two norms beside the dot product.

pub(crate) mod bytes;
pub(crate) mod kernels;

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::storage::MetaRecord;
use kernels::kernels;

/// Which distance kernels this CPU runs ("avx2+fma" or "portable").
pub fn kernel_name() -> &'static str {
    kernels().name
}

/// The most dimensions a vector may have (pgvector allows 16,000 for its `vector` type).
pub const MAX_DIMENSIONS: usize = 16_000;
/// The most bits a Hamming vector may have.
pub const MAX_BITS: usize = 64_000;

/// A distance, with pgvector's meanings so that SQL users need not relearn anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Metric {
    /// `1 - cos(a, b)`, pgvector's `<=>`. Zero vectors are refused: they have no direction.
    Cosine = 1,
    /// The Euclidean distance, pgvector's `<->` (not its square).
    Euclidean = 2,
    /// The negative inner product, pgvector's `<#>`.
    InnerProduct = 3,
    /// The L1 (taxicab) distance, pgvector's `<+>`.
    Manhattan = 4,
    /// The number of differing bits between bit vectors, pgvector's `<~>`.
    Hamming = 5,
    /// The four float distances over vectors stored as IEEE half floats: half the bytes of f32
    /// to store and to read per distance, and exact for values that are halves already (a
    /// pgvector `halfvec` column's). Elements beyond the half range (±65,504) are refused.
    HalfCosine = 6,
    HalfEuclidean = 7,
    HalfInnerProduct = 8,
    HalfManhattan = 9,
}

impl Metric {
    pub const ALL: [Metric; 9] = [
        Metric::Cosine,
        Metric::Euclidean,
        Metric::InnerProduct,
        Metric::Manhattan,
        Metric::Hamming,
        Metric::HalfCosine,
        Metric::HalfEuclidean,
        Metric::HalfInnerProduct,
        Metric::HalfManhattan,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Euclidean => "euclidean",
            Metric::InnerProduct => "inner product",
            Metric::Manhattan => "manhattan",
            Metric::Hamming => "hamming",
            Metric::HalfCosine => "cosine (half floats)",
            Metric::HalfEuclidean => "euclidean (half floats)",
            Metric::HalfInnerProduct => "inner product (half floats)",
            Metric::HalfManhattan => "manhattan (half floats)",
        }
    }

    /// The same distance over vectors stored as half floats; `None` for Hamming.
    pub fn in_half_floats(self) -> Option<Metric> {
        match self {
            Metric::Cosine | Metric::HalfCosine => Some(Metric::HalfCosine),
            Metric::Euclidean | Metric::HalfEuclidean => Some(Metric::HalfEuclidean),
            Metric::InnerProduct | Metric::HalfInnerProduct => Some(Metric::HalfInnerProduct),
            Metric::Manhattan | Metric::HalfManhattan => Some(Metric::HalfManhattan),
            Metric::Hamming => None,
        }
    }

    /// The same distance over vectors stored as f32 (Hamming stays itself).
    pub fn in_f32(self) -> Metric {
        match self {
            Metric::HalfCosine => Metric::Cosine,
            Metric::HalfEuclidean => Metric::Euclidean,
            Metric::HalfInnerProduct => Metric::InnerProduct,
            Metric::HalfManhattan => Metric::Manhattan,
            other => other,
        }
    }

    /// Whether vectors are stored as half floats.
    pub fn is_half(self) -> bool {
        self.in_f32() != self
    }

    /// The metric whose `as u32` is `code`.
    pub fn from_code(code: u32) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| *m as u32 == code)
    }

    pub fn is_binary(self) -> bool {
        self == Metric::Hamming
    }

    /// Bytes one stored vector of `dimensions` takes.
    pub fn vector_bytes(self, dimensions: usize) -> usize {
        if self.is_binary() {
            dimensions.div_ceil(64) * 8
        } else if self.is_half() {
            dimensions * 2
        } else {
            dimensions * 4
        }
    }

    /// The value the search orders by, computed on stored (prepared) vectors. It orders exactly
    /// like the distance; `to_distance` turns it into the user-facing number.
    #[inline]
    pub(crate) fn score(self, a: &[u8], b: &[u8]) -> f32 {
        let k = kernels();
        match self {
            Metric::Hamming => (k.hamming)(&as_words(a), &as_words(b)) as f32,
            Metric::Cosine => 1.0 - (k.dot)(&as_floats(a), &as_floats(b)),
            Metric::Euclidean => (k.l2_squared)(&as_floats(a), &as_floats(b)),
            Metric::InnerProduct => -(k.dot)(&as_floats(a), &as_floats(b)),
            Metric::Manhattan => (k.l1)(&as_floats(a), &as_floats(b)),
            Metric::HalfCosine => {
                let [ab, aa, bb] = (k.cosine_parts_halves)(&as_halves(a), &as_halves(b));
                // Stored vectors are never zero; rounding can push parallel ones past 1.
                1.0 - (ab / (aa * bb).sqrt()).clamp(-1.0, 1.0)
            }
            Metric::HalfEuclidean => (k.l2_squared_halves)(&as_halves(a), &as_halves(b)),
            Metric::HalfInnerProduct => -(k.dot_halves)(&as_halves(a), &as_halves(b)),
            Metric::HalfManhattan => (k.l1_halves)(&as_halves(a), &as_halves(b)),
        }
    }

    /// The distance reported to users for an internal score.
    #[inline]
    pub fn to_distance(self, score: f32) -> f32 {
        match self {
            Metric::Euclidean | Metric::HalfEuclidean => score.max(0.0).sqrt(),
            _ => score,
        }
    }
}

impl Metric {
    /// The distance between two caller vectors, as the SQL operators report it without an index.
    /// Both must have the same length and finite elements; cosine distance involving a zero
    /// vector is NaN (undefined), as pgvector reports it.
    pub fn distance(self, a: VectorRef<'_>, b: VectorRef<'_>) -> Result<f64> {
        if self.is_half() {
            return self.in_f32().distance(a, b);
        }
        if a.dimensions() != b.dimensions() {
            return Err(Error::DifferentDimensions {
                left: a.dimensions(),
                right: b.dimensions(),
            });
        }
        check_dimensions(self, a.dimensions())?;
        let k = kernels();
        match (self, a, b) {
            (
                Metric::Hamming,
                VectorRef::Bits { words: x, .. },
                VectorRef::Bits { words: y, .. },
            ) => {
                if x.len() != y.len() {
                    return Err(Error::DifferentDimensions {
                        left: x.len() * 64,
                        right: y.len() * 64,
                    });
                }
                Ok((k.hamming)(x, y) as f64)
            }
            (Metric::Hamming, ..) => Err(Error::WrongVectorKind {
                metric: self.name(),
                expected: "bit",
            }),
            (_, VectorRef::Floats(x), VectorRef::Floats(y)) => {
                for v in [x, y] {
                    if let Some(index) = v.iter().position(|e| !e.is_finite()) {
                        return Err(Error::NonFinite {
                            index,
                            value: v[index],
                        });
                    }
                }
                Ok(match self {
                    Metric::Euclidean => ((k.l2_squared)(x, y) as f64).sqrt(),
                    Metric::InnerProduct => -((k.dot)(x, y) as f64),
                    Metric::Manhattan => (k.l1)(x, y) as f64,
                    _ => {
                        let norms = (k.dot)(x, x) as f64 * (k.dot)(y, y) as f64;
                        let similarity = (k.dot)(x, y) as f64 / norms.sqrt();
                        // Rounding can push the similarity of parallel vectors past 1.
                        1.0 - similarity.clamp(-1.0, 1.0)
                    }
                })
            }
            _ => Err(Error::WrongVectorKind {
                metric: self.name(),
                expected: "float",
            }),
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Views stored bytes as floats. Stored chunks and prepared buffers are aligned, so this borrows;
/// the copy exists only so that an unexpected alignment is slow instead of a crash.
#[inline]
fn as_floats(bytes: &[u8]) -> Cow<'_, [f32]> {
    match bytemuck::try_cast_slice(bytes) {
        Ok(floats) => Cow::Borrowed(floats),
        Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(bytes)),
    }
}

#[inline]
fn as_halves(bytes: &[u8]) -> Cow<'_, [u16]> {
    match bytemuck::try_cast_slice(bytes) {
        Ok(halves) => Cow::Borrowed(halves),
        Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(bytes)),
    }
}

#[inline]
fn as_words(bytes: &[u8]) -> Cow<'_, [u64]> {
    match bytemuck::try_cast_slice(bytes) {
        Ok(words) => Cow::Borrowed(words),
        Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(bytes)),
    }
}

/// One vector as a caller hands it in.
#[derive(Debug, Clone, Copy)]
pub enum VectorRef<'a> {
    /// Float elements, for every metric but Hamming.
    Floats(&'a [f32]),
    /// Bits packed into little-endian words, first dimension in bit 0 of word 0, for Hamming.
    Bits { words: &'a [u64], dimensions: usize },
}

impl VectorRef<'_> {
    pub fn dimensions(&self) -> usize {
        match self {
            VectorRef::Floats(f) => f.len(),
            VectorRef::Bits { dimensions, .. } => *dimensions,
        }
    }
}

/// Validated vectors in their stored form, back to back in an 8-byte-aligned buffer.
#[derive(Debug, Clone, Default)]
pub struct PreparedVectors {
    words: Vec<u64>,
    /// Bytes of one stored vector.
    vector_bytes: usize,
    /// Words one vector occupies in `words` (vectors start on 8-byte boundaries).
    stride_words: usize,
    len: usize,
}

impl PreparedVectors {
    pub(crate) fn with_capacity(vector_bytes: usize, capacity: usize) -> Self {
        let stride_words = vector_bytes.div_ceil(8);
        let words = Vec::with_capacity(stride_words * capacity);
        advise_huge_pages(&words);
        PreparedVectors {
            words,
            vector_bytes,
            stride_words,
            len: 0,
        }
    }

    /// Checks every vector against the index's metric and dimensions and stores them.
    pub(crate) fn prepare<'a>(
        meta: &MetaRecord,
        vectors: impl IntoIterator<Item = VectorRef<'a>>,
    ) -> Result<Self> {
        let vectors = vectors.into_iter();
        let mut prepared =
            PreparedVectors::with_capacity(meta.vector_bytes as usize, vectors.size_hint().0);
        for v in vectors {
            prepared.push(meta.metric(), meta.dimensions as usize, v)?;
        }
        Ok(prepared)
    }

    /// Checks every vector against `metric` and `dimensions` and stores them, for callers that
    /// hold vectors before any index exists (an index checks the same way in its `prepare`).
    pub fn new<'a>(
        metric: Metric,
        dimensions: usize,
        vectors: impl IntoIterator<Item = VectorRef<'a>>,
    ) -> Result<Self> {
        check_dimensions(metric, dimensions)?;
        let vectors = vectors.into_iter();
        let mut prepared =
            PreparedVectors::with_capacity(metric.vector_bytes(dimensions), vectors.size_hint().0);
        for v in vectors {
            prepared.push(metric, dimensions, v)?;
        }
        Ok(prepared)
    }

    /// Vectors already in stored form, as [`PreparedVectors::stored`] gave them: the caller
    /// kept them somewhere of its own and hands them back, each `vector_bytes` long.
    pub fn from_stored<'a>(
        vector_bytes: usize,
        stored: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self> {
        let stored = stored.into_iter();
        let mut prepared = PreparedVectors::with_capacity(vector_bytes, stored.size_hint().0);
        for bytes in stored {
            if bytes.len() != vector_bytes {
                return Err(Error::DimensionMismatch {
                    expected: vector_bytes,
                    got: bytes.len(),
                });
            }
            let start = prepared.words.len();
            prepared.words.resize(start + prepared.stride_words, 0);
            bytemuck::cast_slice_mut::<u64, u8>(&mut prepared.words[start..])[..vector_bytes]
                .copy_from_slice(bytes);
            prepared.len += 1;
        }
        Ok(prepared)
    }

    /// Every vector back to back, each padded to a multiple of 8 bytes: the form
    /// [`PreparedVectors::from_padded`] reads back, for a caller that ships a batch whole.
    pub fn padded_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.words[..self.len * self.stride_words])
    }

    /// Vectors as [`PreparedVectors::padded_bytes`] gave them, `vector_bytes` each.
    pub fn from_padded(vector_bytes: usize, padded: &[u8]) -> Result<Self> {
        let stride = vector_bytes.div_ceil(8) * 8;
        if stride == 0 || !padded.len().is_multiple_of(stride) {
            return Err(Error::Corrupt(format!(
                "{} bytes are not whole vectors of {vector_bytes} bytes",
                padded.len()
            )));
        }
        let mut prepared = PreparedVectors::with_capacity(vector_bytes, padded.len() / stride);
        prepared.words.extend(
            padded
                .chunks_exact(8)
                .map(|w| u64::from_ne_bytes(w.try_into().expect("chunks of 8"))),
        );
        prepared.len = padded.len() / stride;
        Ok(prepared)
    }

    /// The stored form of vector `i`, for a caller that keeps it until it inserts it.
    pub fn stored(&self, i: usize) -> &[u8] {
        self.get(i)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// A hash of the vectors, to tell one set from another (not against an adversary).
    pub(crate) fn fingerprint(&self) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let words = &self.words[..self.len * self.stride_words];
        // Four lanes, so that the multiplies do not wait on each other.
        let mut lanes = [1u64, 2, 3, 4];
        let mut quads = words.chunks_exact(4);
        for quad in &mut quads {
            for (lane, &w) in lanes.iter_mut().zip(quad) {
                *lane = (*lane ^ w).wrapping_mul(K).rotate_left(29);
            }
        }
        for (lane, &w) in lanes.iter_mut().zip(quads.remainder()) {
            *lane = (*lane ^ w).wrapping_mul(K).rotate_left(29);
        }
        lanes.iter().fold(self.len as u64, |h, &lane| {
            (h ^ lane).wrapping_mul(K).rotate_left(31)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of one stored vector.
    pub fn vector_bytes(&self) -> usize {
        self.vector_bytes
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> &[u8] {
        let start = i * self.stride_words;
        &bytemuck::cast_slice(&self.words[start..start + self.stride_words])[..self.vector_bytes]
    }

    /// Appends vectors prepared for the same index, so rows checked one at a time can be
    /// inserted as one batch.
    pub fn append(&mut self, other: &PreparedVectors) -> Result<()> {
        if other.vector_bytes != self.vector_bytes {
            return Err(Error::DimensionMismatch {
                expected: self.vector_bytes,
                got: other.vector_bytes,
            });
        }
        self.words.extend_from_slice(&other.words);
        self.len += other.len;
        Ok(())
    }

    /// Keeps the vectors whose index `keep` returns true for, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let stride = self.stride_words;
        let mut kept = 0;
        for i in 0..self.len {
            if keep(i) {
                if kept != i {
                    self.words
                        .copy_within(i * stride..(i + 1) * stride, kept * stride);
                }
                kept += 1;
            }
        }
        self.words.truncate(kept * stride);
        self.len = kept;
    }

    /// An empty set with room for `capacity` vectors, to be filled by `push` as they arrive.
    pub fn with_room(metric: Metric, dimensions: usize, capacity: usize) -> Result<Self> {
        check_dimensions(metric, dimensions)?;
        Ok(PreparedVectors::with_capacity(
            metric.vector_bytes(dimensions),
            capacity,
        ))
    }

    /// Empties the set and keeps its memory.
    pub fn clear(&mut self) {
        self.words.clear();
        self.len = 0;
    }

    /// Bytes of the buffer the vectors pushed so far fill.
    pub fn filled_bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// The set's room (memory reserved for vectors not pushed yet) from byte `from` of its
    /// buffer, `len` bytes at most: for another thread to fault in while this one fills the set
    /// (`Room::fault_in`). Empty where it would reach into pushed vectors or past the room.
    pub fn room(&self, from: usize, len: usize) -> Room {
        let (filled, capacity) = (self.filled_bytes(), self.words.capacity() * 8);
        let start = from.clamp(filled, capacity);
        let end = from.saturating_add(len).clamp(start, capacity);
        Room {
            start: self.words.as_ptr() as usize + start,
            len: end - start,
        }
    }

    /// Checks `vector` against `metric` and `dimensions` (those of the set's index) and appends
    /// its stored form; a refused vector leaves the set as it was.
    pub fn push(&mut self, metric: Metric, dimensions: usize, vector: VectorRef<'_>) -> Result<()> {
        let start = self.words.len();
        self.words.resize(start + self.stride_words, 0);
        let slot = &mut self.words[start..];
        if let Err(e) = prepare_into(metric, dimensions, vector, slot) {
            self.words.truncate(start);
            return Err(e);
        }
        self.len += 1;
        Ok(())
    }
}

/// Memory a `PreparedVectors` has reserved and not written yet, by address (see `room`).
#[derive(Debug, Clone, Copy)]
pub struct Room {
    start: usize,
    len: usize,
}

impl Room {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Has the kernel back the room's whole pages with memory now, as a first write to each
    /// would, so that the pushes that fill them later do not wait for it: on a virtual machine
    /// a fresh huge page took milliseconds to fault in, most of the time of reading a table's
    /// rows into a batch. False where the kernel cannot (before Linux 5.14) or the room is gone.
    pub fn fault_in(&self) -> bool {
        const PAGE: usize = 4096;
        let start = self.start.next_multiple_of(PAGE);
        let end = (self.start + self.len) / PAGE * PAGE;
        if end <= start {
            return true;
        }
        // SAFETY: MADV_POPULATE_WRITE maps pages in without writing them: no byte of memory
        // changes, whoever owns the range now (a range freed since fails with ENOMEM or is
        // populated, unchanged, for its new owner).
        unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                end - start,
                libc::MADV_POPULATE_WRITE,
            ) == 0
        }
    }
}

/// A build reads vectors at random, and with 4 KiB pages most of those reads also miss the TLB.
/// Asking for transparent huge pages on a large batch buffer removes most of those misses.
fn advise_huge_pages(words: &Vec<u64>) {
    const HUGE: usize = 2 << 20;
    let bytes = words.capacity() * 8;
    if bytes < 4 * HUGE {
        return;
    }
    let start = (words.as_ptr() as usize).next_multiple_of(HUGE);
    let end = (words.as_ptr() as usize + bytes) / HUGE * HUGE;
    if end > start {
        // SAFETY: the range lies inside this Vec's allocation; MADV_HUGEPAGE only changes how the
        // kernel backs those pages, never their contents, and failure is harmless.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

/// Validates one vector and writes its stored form into `out` (zeroed, `stride_words` long).
fn prepare_into(
    metric: Metric,
    dimensions: usize,
    vector: VectorRef<'_>,
    out: &mut [u64],
) -> Result<()> {
    check_dimensions(metric, vector.dimensions())?;
    if vector.dimensions() != dimensions {
        return Err(Error::DimensionMismatch {
            expected: dimensions,
            got: vector.dimensions(),
        });
    }
    match (metric, vector) {
        (Metric::Hamming, VectorRef::Bits { words, dimensions }) => {
            let needed = dimensions.div_ceil(64);
            if words.len() != needed {
                return Err(Error::DimensionMismatch {
                    expected: dimensions,
                    got: words.len() * 64,
                });
            }
            let spare = needed * 64 - dimensions;
            if spare > 0 && words[needed - 1] >> (64 - spare) != 0 {
                return Err(Error::StrayBits { dimensions });
            }
            out[..needed].copy_from_slice(words);
            Ok(())
        }
        (Metric::Hamming, VectorRef::Floats(_)) => Err(Error::WrongVectorKind {
            metric: metric.name(),
            expected: "bit",
        }),
        (_, VectorRef::Bits { .. }) => Err(Error::WrongVectorKind {
            metric: metric.name(),
            expected: "float",
        }),
        (_, VectorRef::Floats(values)) if metric.is_half() => {
            let halves: &mut [u16] = &mut bytemuck::cast_slice_mut(out)[..values.len()];
            let mut norm = 0.0f64;
            for (index, (&value, slot)) in values.iter().zip(halves.iter_mut()).enumerate() {
                if !value.is_finite() {
                    return Err(Error::NonFinite { index, value });
                }
                let half = half::f16::from_f32(value);
                if half.is_infinite() {
                    return Err(Error::OutOfHalfRange { index, value });
                }
                norm += f64::from(half.to_f32()).powi(2);
                *slot = half.to_bits();
            }
            // A vector whose elements all round to zero has no direction either.
            if metric == Metric::HalfCosine && norm == 0.0 {
                return Err(Error::ZeroVector);
            }
            Ok(())
        }
        (_, VectorRef::Floats(values)) => {
            let floats: &mut [f32] = &mut bytemuck::cast_slice_mut(out)[..values.len()];
            let mut norm = 0.0f64;
            for (index, (&value, slot)) in values.iter().zip(floats.iter_mut()).enumerate() {
                if !value.is_finite() {
                    return Err(Error::NonFinite { index, value });
                }
                norm += value as f64 * value as f64;
                *slot = value;
            }
            if metric == Metric::Cosine {
                // Stored normalised so cosine distance is one dot product; the norm is taken in
                // f64, so only a true zero vector lacks a direction.
                let norm = norm.sqrt();
                if norm == 0.0 {
                    return Err(Error::ZeroVector);
                }
                let inv = 1.0 / norm;
                for slot in floats.iter_mut() {
                    *slot = (*slot as f64 * inv) as f32;
                }
            }
            Ok(())
        }
    }
}

/// Checks a dimension count for `metric` on its own, as index creation needs.
pub(crate) fn check_dimensions(metric: Metric, dimensions: usize) -> Result<()> {
    let max = if metric.is_binary() {
        MAX_BITS
    } else {
        MAX_DIMENSIONS
    };
    if dimensions == 0 {
        return Err(Error::EmptyVector);
    }
    if dimensions > max {
        return Err(Error::TooManyDimensions {
            got: dimensions,
            max,
        });
    }
    Ok(())
}

/// A query in stored form, ready for `Metric::score`.
#[derive(Debug, Clone)]
pub struct PreparedQuery(PreparedVectors);

impl PreparedQuery {
    pub fn new(metric: Metric, dimensions: usize, vector: VectorRef<'_>) -> Result<Self> {
        let mut prepared = PreparedVectors::with_capacity(metric.vector_bytes(dimensions), 1);
        prepared.push(metric, dimensions, vector)?;
        Ok(PreparedQuery(prepared))
    }

    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.get(0)
    }

    /// The distance from this query to a vector in stored form, in the units a search reports,
    /// for vectors the caller holds outside the index.
    pub fn distance_to(&self, metric: Metric, stored: &[u8]) -> Result<f32> {
        if stored.len() != self.0.vector_bytes() {
            return Err(Error::DimensionMismatch {
                expected: self.0.vector_bytes(),
                got: stored.len(),
            });
        }
        Ok(metric.to_distance(metric.score(self.bytes(), stored)))
    }
}

/// A stored vector as floats (half floats widened); `None` for bit vectors.
pub(crate) fn stored_floats(metric: Metric, stored: &[u8]) -> Option<Vec<f32>> {
    if metric.is_binary() {
        return None;
    }
    Some(if metric.is_half() {
        bytemuck::pod_collect_to_vec::<u8, u16>(stored)
            .into_iter()
            .map(|bits| half::f16::from_bits(bits).to_f32())
            .collect()
    } else {
        bytemuck::pod_collect_to_vec(stored)
    })
}

/// `floats` in `metric`'s stored form (f32 cosine normalised, half floats rounded): how an
/// index without full vectors scores the vectors it decodes from codes. Float metrics only.
pub(crate) fn stored_from_floats(metric: Metric, mut floats: Vec<f32>) -> Vec<u8> {
    if metric.is_half() {
        let halves: Vec<u16> = floats
            .iter()
            .map(|&x| half::f16::from_f32(x).to_bits())
            .collect();
        return bytemuck::cast_slice(&halves).to_vec();
    }
    if metric == Metric::Cosine {
        let norm = (kernels().dot)(&floats, &floats).sqrt();
        if norm > 0.0 {
            floats.iter_mut().for_each(|x| *x /= norm);
        }
    }
    bytemuck::cast_slice(&floats).to_vec()
}

/// How much of one vector a prefetch asks for: all of a 384-d vector (1,536 bytes), whose last
/// part the kernel would otherwise wait for (docs/benchmarks.md, "Prefetching whole vectors").
/// A bound keeps a list of 32 neighbours of 16,000 dimensions from flooding the cache.
const PREFETCH_BYTES: usize = 2048;

/// Asks the CPU to start loading up to `PREFETCH_BYTES` from `address` into cache, `len` bytes
/// at most. Only a hint: a prefetch never faults, whatever the address, so any address is safe
/// to pass.
#[inline]
pub(crate) fn prefetch(address: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for offset in (0..len.min(PREFETCH_BYTES)).step_by(64) {
        // SAFETY: prefetching does not access memory architecturally and cannot fault; SSE is
        // part of the x86_64 baseline.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                address.wrapping_add(offset).cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (address, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_s_room_lies_past_its_vectors_and_faulting_it_in_changes_none() {
        let dims = 384;
        let mut set = PreparedVectors::with_room(Metric::Euclidean, dims, 10_000).unwrap();
        let row: Vec<f32> = (0..dims).map(|i| i as f32).collect();
        for _ in 0..100 {
            set.push(Metric::Euclidean, dims, VectorRef::Floats(&row))
                .unwrap();
        }
        let filled = set.filled_bytes();
        assert_eq!(filled, 100 * dims * 4);
        // Asked from the start, the room begins where the vectors end.
        let room = set.room(0, 1 << 20);
        assert_eq!(room.len(), (1 << 20) - filled);
        // Linux before 5.14 refuses (false) and changes nothing either.
        room.fault_in();
        assert!(
            set.room(10_000 * dims * 4, 1 << 20).is_empty(),
            "nothing past the room"
        );
        assert!(set.room(filled + 4096, 0).is_empty());
        for _ in 0..100 {
            set.push(Metric::Euclidean, dims, VectorRef::Floats(&row))
                .unwrap();
        }
        assert!((0..200).all(|i| set.get(i) == bytemuck::cast_slice::<f32, u8>(&row)));
    }

    fn score_of(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
        let qa = PreparedQuery::new(metric, a.len(), VectorRef::Floats(a)).unwrap();
        let qb = PreparedQuery::new(metric, b.len(), VectorRef::Floats(b)).unwrap();
        metric.to_distance(metric.score(qa.bytes(), qb.bytes()))
    }

    #[test]
    fn distances_have_pgvector_meanings() {
        let a = [1.0, 2.0, 3.0];
        let b = [4.0, 6.0, 3.0];
        assert!((score_of(Metric::Euclidean, &a, &b) - 5.0).abs() < 1e-6);
        assert!((score_of(Metric::InnerProduct, &a, &b) - -25.0).abs() < 1e-5);
        assert!((score_of(Metric::Manhattan, &a, &b) - 7.0).abs() < 1e-6);
        let cos = 25.0 / (14.0f64.sqrt() * 61.0f64.sqrt());
        assert!((score_of(Metric::Cosine, &a, &b) as f64 - (1.0 - cos)).abs() < 1e-6);
        let x = [0b1011u64];
        let y = [0b0110u64];
        let qx = PreparedQuery::new(
            Metric::Hamming,
            4,
            VectorRef::Bits {
                words: &x,
                dimensions: 4,
            },
        )
        .unwrap();
        let qy = PreparedQuery::new(
            Metric::Hamming,
            4,
            VectorRef::Bits {
                words: &y,
                dimensions: 4,
            },
        )
        .unwrap();
        assert_eq!(Metric::Hamming.score(qx.bytes(), qy.bytes()), 3.0);
    }

    #[test]
    fn half_float_metrics_give_the_f32_distances_of_half_values_in_half_the_bytes() {
        // Values a halfvec column can hold: the half metrics lose nothing on them.
        let a = [1.0, 2.0, 3.0, -0.5, 0.125, 1024.0, 0.099975586];
        let b = [4.0, 6.0, 3.0, 0.25, -2.0, 1000.0, 65504.0];
        for metric in [
            Metric::Cosine,
            Metric::Euclidean,
            Metric::InnerProduct,
            Metric::Manhattan,
        ] {
            let half = metric.in_half_floats().unwrap();
            assert_eq!(half.in_f32(), metric);
            assert!(half.is_half() && !metric.is_half());
            assert_eq!(half.vector_bytes(7) * 2, metric.vector_bytes(7));
            let (h, f) = (
                score_of(half, &a, &b) as f64,
                score_of(metric, &a, &b) as f64,
            );
            assert!(
                (h - f).abs() <= 1e-6 * f.abs().max(1.0),
                "{half}: {h} vs {f}"
            );
            let reference = metric
                .distance(VectorRef::Floats(&a), VectorRef::Floats(&b))
                .unwrap();
            assert_eq!(
                half.distance(VectorRef::Floats(&a), VectorRef::Floats(&b))
                    .unwrap(),
                reference
            );
        }
        assert_eq!(Metric::Hamming.in_half_floats(), None);
        let q =
            |m: Metric, dims: usize, v: VectorRef<'_>| PreparedQuery::new(m, dims, v).map(|_| ());
        assert!(matches!(
            q(Metric::HalfEuclidean, 2, VectorRef::Floats(&[1.0, 70000.0])),
            Err(Error::OutOfHalfRange { index: 1, .. })
        ));
        assert!(matches!(
            q(
                Metric::HalfManhattan,
                2,
                VectorRef::Floats(&[f32::NAN, 1.0])
            ),
            Err(Error::NonFinite { index: 0, .. })
        ));
        // Elements below the smallest half round to zero, and so does the vector's direction.
        assert!(matches!(
            q(Metric::HalfCosine, 2, VectorRef::Floats(&[1e-9, 0.0])),
            Err(Error::ZeroVector)
        ));
        assert!(q(Metric::HalfInnerProduct, 2, VectorRef::Floats(&[0.0, 0.0])).is_ok());
    }

    #[test]
    fn bad_vectors_are_refused_with_their_own_error() {
        let q =
            |m: Metric, dims: usize, v: VectorRef<'_>| PreparedQuery::new(m, dims, v).map(|_| ());
        assert!(matches!(
            q(Metric::Euclidean, 3, VectorRef::Floats(&[1.0, 2.0])),
            Err(Error::DimensionMismatch {
                expected: 3,
                got: 2
            })
        ));
        assert!(matches!(
            q(Metric::Euclidean, 2, VectorRef::Floats(&[1.0, f32::NAN])),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            q(
                Metric::Manhattan,
                2,
                VectorRef::Floats(&[f32::INFINITY, 0.0])
            ),
            Err(Error::NonFinite { index: 0, .. })
        ));
        assert!(matches!(
            q(Metric::Cosine, 2, VectorRef::Floats(&[0.0, 0.0])),
            Err(Error::ZeroVector)
        ));
        assert!(q(Metric::Cosine, 2, VectorRef::Floats(&[1e-45, 0.0])).is_ok());
        assert!(matches!(
            q(Metric::Euclidean, 0, VectorRef::Floats(&[])),
            Err(Error::EmptyVector)
        ));
        assert!(matches!(
            q(Metric::Hamming, 4, VectorRef::Floats(&[1.0; 4])),
            Err(Error::WrongVectorKind { .. })
        ));
        assert!(matches!(
            q(
                Metric::Cosine,
                1,
                VectorRef::Bits {
                    words: &[1],
                    dimensions: 1
                }
            ),
            Err(Error::WrongVectorKind { .. })
        ));
        assert!(matches!(
            q(
                Metric::Hamming,
                4,
                VectorRef::Bits {
                    words: &[0b10000],
                    dimensions: 4
                }
            ),
            Err(Error::StrayBits { dimensions: 4 })
        ));
        let big = vec![1.0f32; MAX_DIMENSIONS + 1];
        assert!(matches!(
            q(Metric::Euclidean, big.len(), VectorRef::Floats(&big)),
            Err(Error::TooManyDimensions { .. })
        ));
        // The inner product keeps zero vectors: they are a valid point, just far from everything.
        assert!(q(Metric::InnerProduct, 2, VectorRef::Floats(&[0.0, 0.0])).is_ok());
    }

    #[test]
    fn caller_distances_match_the_reference_and_refuse_bad_pairs() {
        let a = [1.0f32, 2.0, 3.0];
        let b = [4.0f32, -6.0, 8.0];
        let d = |m: Metric| {
            m.distance(VectorRef::Floats(&a), VectorRef::Floats(&b))
                .unwrap()
        };
        assert!((d(Metric::Euclidean) - (9.0f64 + 64.0 + 25.0).sqrt()).abs() < 1e-5);
        assert!((d(Metric::InnerProduct) - -(4.0 - 12.0 + 24.0)).abs() < 1e-5);
        assert!((d(Metric::Manhattan) - 16.0).abs() < 1e-5);
        let cos = 1.0 - 16.0 / ((14.0f64).sqrt() * (116.0f64).sqrt());
        assert!((d(Metric::Cosine) - cos).abs() < 1e-6);
        let zero = [0.0f32; 3];
        assert!(Metric::Cosine
            .distance(VectorRef::Floats(&a), VectorRef::Floats(&zero))
            .unwrap()
            .is_nan());
        assert!(matches!(
            Metric::Euclidean.distance(VectorRef::Floats(&a), VectorRef::Floats(&a[..2])),
            Err(Error::DifferentDimensions { left: 3, right: 2 })
        ));
        assert!(matches!(
            Metric::Euclidean.distance(VectorRef::Floats(&[f32::NAN]), VectorRef::Floats(&[1.0])),
            Err(Error::NonFinite { index: 0, .. })
        ));
        assert!(matches!(
            Metric::Euclidean.distance(VectorRef::Floats(&[]), VectorRef::Floats(&[])),
            Err(Error::EmptyVector)
        ));
        let (x, y) = ([0b101101u64], [0b000111u64]);
        let hx = VectorRef::Bits {
            words: &x,
            dimensions: 6,
        };
        let hy = VectorRef::Bits {
            words: &y,
            dimensions: 6,
        };
        assert_eq!(Metric::Hamming.distance(hx, hy).unwrap(), 3.0);
    }
}
