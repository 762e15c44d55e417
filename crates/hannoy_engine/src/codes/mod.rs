//! Compact codes of vectors for estimating distances without reading them (the issue "An index
//! far larger than RAM"): the walk of an index with codes scores them (`stored`), and
//! `benches/codes.rs` compares the schemes on recall at equal bytes.
//!
//! - **RaBitQ** (Gao and Long, SIGMOD 2024): the residual from a centroid, normalised and
//!   randomly rotated, is rounded to a grid of `bits` bits per coordinate. Past one bit the
//!   grid is uniform over the largest coordinate; the extended RaBitQ's search for the grid
//!   scale that fits each vector best (SIGMOD 2025) is not done. The inner product of the query's rotated residual with the normalised
//!   grid point, divided by that point's inner product with the vector's own rotated residual,
//!   estimates the inner product of the residuals without bias, within a bound that shrinks as
//!   1/sqrt(d). The query's rotated residual is rounded to 4 bits per coordinate, and codes and
//!   query are kept as bit planes, so the inner product is popcounts of word pairs.
//! - **Binary**: the sign of each coordinate as stored (pgvector's `binary_quantize`), compared by
//!   Hamming distance.

pub(crate) mod rotation;
pub(crate) mod stored;

use rotation::Rotation;

use crate::error::{Error, Result};

/// How vectors are coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `bits` per coordinate (1 to 8) of the rotated residual, and its factors.
    Rabitq { bits: u8 },
    /// One bit per coordinate, no factors.
    Binary,
}

/// How an index codes its vectors for the graph walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantization {
    /// The walk reads full vectors.
    #[default]
    None,
    /// The walk scores RaBitQ codes of `bits` per coordinate and re-ranks what it returns
    /// with the full vectors.
    Rabitq { bits: u8 },
}

impl Quantization {
    /// Bits per coordinate of the codes `automatic` chooses: at one bit a walk loses too much
    /// recall per `ef_search` at 768 dimensions, at four an estimate costs what a 384-d dot
    /// product does (docs/quantization.md, "The default").
    pub const DEFAULT_BITS: u8 = 2;

    /// The fewest dimensions `automatic` keeps codes for: RaBitQ's error shrinks as
    /// `1/sqrt(d)`, and below this a walk on codes loses as much recall per `ef_search` as it
    /// saves in reads, or more (docs/quantization.md, "The default").
    pub const AUTOMATIC_MIN_DIMENSIONS: usize = 256;

    /// What an index of `metric` over vectors of `dimensions` keeps when its options leave the
    /// choice open: codes of `DEFAULT_BITS` where they order the metric's distances and the
    /// dimensions are enough for them, none elsewhere.
    pub fn automatic(metric: crate::Metric, dimensions: usize) -> Quantization {
        let codes = Quantization::Rabitq {
            bits: Self::DEFAULT_BITS,
        };
        if dimensions >= Self::AUTOMATIC_MIN_DIMENSIONS && codes.validate(metric).is_ok() {
            codes
        } else {
            Quantization::None
        }
    }

    /// Bits per coordinate, 0 for none: the form stored in metadata and change records.
    pub fn bits(self) -> u8 {
        match self {
            Quantization::None => 0,
            Quantization::Rabitq { bits } => bits,
        }
    }

    pub fn from_bits(bits: u8) -> Quantization {
        match bits {
            0 => Quantization::None,
            bits => Quantization::Rabitq { bits },
        }
    }

    /// Whether an index of `metric` can keep such codes; see `Error::InvalidParameter`.
    pub fn validate(self, metric: crate::Metric) -> Result<()> {
        let Quantization::Rabitq { bits } = self else {
            return Ok(());
        };
        if !(1..=MAX_CODE_BITS).contains(&bits) {
            return Err(Error::InvalidParameter {
                name: "bits",
                reason: format!("{bits} is outside 1..={MAX_CODE_BITS}"),
            });
        }
        if metric.is_binary() || metric.in_f32() == crate::Metric::Manhattan {
            return Err(Error::InvalidParameter {
                name: "quantization",
                reason: format!(
                    "RaBitQ codes estimate Euclidean distances, which do not order {} distances",
                    metric.name()
                ),
            });
        }
        Ok(())
    }
}

/// The most bits per coordinate a RaBitQ code may have.
pub const MAX_CODE_BITS: u8 = 8;

/// The constant of RaBitQ's error bound: the estimate is within `EPSILON0 · sqrt((1 - f²) / f²)
/// / sqrt(d - 1)` of the true inner product of unit residuals with a probability that grows
/// with it (f is a code's factor `fit`). The error is close to normal with that scale, so the
/// paper's 1.9 holds for about 94% of pairs: enough to decide what to re-rank, not a lower
/// bound to hand PostgreSQL, which must hold for every pair (`Quantizer::lower_bound`).
const EPSILON0: f32 = 1.9;

/// Where a RaBitQ code's grid of levels ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grid {
    /// At the largest coordinate (the first RaBitQ): no coordinate is clipped, and most of them
    /// fall on the few middle levels.
    Span,
    /// Where the grid point fits the vector best (the extended RaBitQ), found per vector: the
    /// few largest coordinates are clipped to the end levels and the rest spread over more
    /// (docs/quantization.md, "The grid").
    #[default]
    Fitted,
}

/// The centroid and rotation every code of an index is made with.
pub struct Quantizer {
    centroid: Vec<f32>,
    /// The centroid rotated, for `decode_rotated`; computed when first asked for.
    rotated_centroid: std::sync::OnceLock<Vec<f32>>,
    rotation: Rotation,
    scheme: Scheme,
    grid: Grid,
    /// `sqrt(d - 1)`, the bound's scale, computed once.
    spread: f32,
}

/// One vector's code in the form an index stores it: for RaBitQ, `bits` bit planes of
/// `words(d)` native-endian words, lowest first (bit i of plane k is bit k of coordinate i's
/// level), then the factors below as native-endian f32s; for binary codes, one plane of signs.
/// Planes let one popcount of a word pair sum 64 coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Code(Vec<u8>);

impl Code {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The factors after a RaBitQ code's planes, in this order.
mod factor {
    /// The residual's length.
    pub const NORM: usize = 0;
    /// The normalised grid point's inner product with the unit rotated residual.
    pub const FIT: usize = 1;
    /// The normalised grid point is `LOW + level · STEP` per coordinate.
    pub const LOW: usize = 2;
    pub const STEP: usize = 3;
    /// The coded vector's own squared length, for inner products.
    pub const SQUARE: usize = 4;
    /// Σ of the levels, so an estimate does not count them.
    pub const LEVELS: usize = 5;
    pub const COUNT: usize = 6;
}

/// Factor `i` (`factor::*`) of a RaBitQ code whose planes take `planes` bytes.
#[inline]
fn factor_of(code: &[u8], planes: usize, i: usize) -> f32 {
    let at = planes + 4 * i;
    f32::from_ne_bytes([code[at], code[at + 1], code[at + 2], code[at + 3]])
}

/// Bytes of the factors: six f32s, a multiple of 8 so that planes of consecutive codes stay
/// aligned to words.
const FACTOR_BYTES: usize = factor::COUNT * 4;

/// Bits per coordinate of a query's rotated residual: RaBitQ's choice, which costs the estimate
/// almost nothing and turns its inner product into popcounts.
const QUERY_BITS: usize = 4;

/// A query prepared for estimates against codes.
pub struct CodedQuery {
    /// `QUERY_BITS` planes of the query's levels (RaBitQ), or one plane of its signs (binary).
    planes: Vec<u64>,
    /// The query's rotated unit residual is about `low + level · step` per coordinate.
    low: f32,
    step: f32,
    /// Σ of those dequantized coordinates.
    sum: f32,
    norm: f32,
    /// The query's own squared length.
    square: f32,
    /// The rotated unit residual itself (RaBitQ; empty for binary codes), for `lower_bound`.
    rotated: Vec<f32>,
}

impl CodedQuery {
    /// The query's squared length, for turning an estimated distance into an inner product.
    pub fn square(&self) -> f32 {
        self.square
    }
}

/// An estimated squared Euclidean distance, or a Hamming distance for binary codes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub distance: f32,
    /// How far the true squared distance may lie from `distance` (zero when the scheme gives
    /// no bound).
    pub bound: f32,
    /// The coded vector's squared length (zero for binary codes).
    pub square: f32,
}

impl Quantizer {
    pub fn new(scheme: Scheme, centroid: Vec<f32>, seed: u64) -> Result<Quantizer> {
        if let Scheme::Rabitq { bits } = scheme {
            if !(1..=MAX_CODE_BITS).contains(&bits) {
                return Err(Error::InvalidParameter {
                    name: "bits",
                    reason: format!("{bits} is outside 1..={MAX_CODE_BITS}"),
                });
            }
        }
        if centroid.is_empty() {
            return Err(Error::EmptyVector);
        }
        if let Some((index, &value)) = centroid.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(Error::NonFinite { index, value });
        }
        Ok(Quantizer {
            rotation: Rotation::new(centroid.len(), seed),
            spread: (centroid.len().max(2) as f32 - 1.0).sqrt(),
            rotated_centroid: std::sync::OnceLock::new(),
            centroid,
            scheme,
            grid: Grid::default(),
        })
    }

    /// The same quantizer, making its codes on `grid`: what an index's codes were made with.
    pub fn with_grid(self, grid: Grid) -> Quantizer {
        Quantizer { grid, ..self }
    }

    /// The mean of `vectors`, summed in order in f64 so that the same vectors give the same bits
    /// wherever it runs: the centroid RaBitQ codes residuals from.
    pub fn mean<V: AsRef<[f32]>>(dims: usize, vectors: impl Iterator<Item = V>) -> Vec<f32> {
        let mut sum = vec![0.0f64; dims];
        let mut count = 0usize;
        for v in vectors {
            sum.iter_mut()
                .zip(v.as_ref())
                .for_each(|(s, x)| *s += *x as f64);
            count += 1;
        }
        sum.iter()
            .map(|s| (s / count.max(1) as f64) as f32)
            .collect()
    }

    pub fn dims(&self) -> usize {
        self.centroid.len()
    }

    pub fn centroid(&self) -> &[f32] {
        &self.centroid
    }

    /// Bytes of one code as an index stores it.
    pub fn code_bytes(&self) -> usize {
        code_bytes(self.scheme, self.dims())
    }

    fn check_length(&self, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dims() {
            return Err(Error::DimensionMismatch {
                expected: self.dims(),
                got: vector.len(),
            });
        }
        Ok(())
    }

    pub fn encode(&self, vector: &[f32]) -> Result<Code> {
        let mut out = vec![0u8; self.code_bytes()];
        self.encode_into(vector, &mut out)?;
        Ok(Code(out))
    }

    /// Writes `vector`'s code into `out`, which must be `code_bytes()` long.
    pub fn encode_into(&self, vector: &[f32], out: &mut [u8]) -> Result<()> {
        self.check_length(vector)?;
        if out.len() != self.code_bytes() {
            return Err(Error::InvalidParameter {
                name: "code",
                reason: format!("{} bytes where a code has {}", out.len(), self.code_bytes()),
            });
        }
        match self.scheme {
            Scheme::Binary => {
                write_planes(&signs(vector), 1, out);
            }
            Scheme::Rabitq { bits } => self.encode_rabitq(vector, bits, out),
        }
        Ok(())
    }

    fn unit_rotated_residual(&self, vector: &[f32]) -> (Vec<f32>, f32) {
        let residual: Vec<f32> = vector
            .iter()
            .zip(&self.centroid)
            .map(|(v, c)| v - c)
            .collect();
        let norm = residual.iter().map(|x| x * x).sum::<f32>().sqrt();
        let unit: Vec<f32> = if norm > 0.0 {
            residual.iter().map(|x| x / norm).collect()
        } else {
            residual
        };
        (self.rotation.apply(&unit), norm)
    }

    fn encode_rabitq(&self, vector: &[f32], bits: u8, out: &mut [u8]) {
        let (rotated, norm) = self.unit_rotated_residual(vector);
        // A symmetric grid of 2^bits levels over [-half, half]; at one bit the levels are the
        // signs, whatever the half-width, and the normalised grid point is ±1/sqrt(d) per
        // coordinate.
        let top = ((1u32 << bits) - 1) as f32;
        let largest = rotated
            .iter()
            .fold(0.0f32, |m, x| m.max(x.abs()))
            .max(f32::MIN_POSITIVE);
        let half = match self.grid {
            Grid::Fitted if bits > 1 => fitted_half_width(&rotated, largest, top),
            _ => largest,
        };
        let (grid_low, grid_step) = (-half, 2.0 * half / top);
        let levels: Vec<u32> = rotated
            .iter()
            .map(|&x| grid_level(x, 1.0 / half, top) as u32)
            .collect();
        let point: Vec<f32> = levels
            .iter()
            .map(|&l| grid_low + l as f32 * grid_step)
            .collect();
        let length = point
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        let fit = point
            .iter()
            .zip(&rotated)
            .map(|(p, r)| p / length * r)
            .sum::<f32>();
        let planes = write_planes(&levels, bits as usize, out);
        let mut factors = [0.0f32; factor::COUNT];
        factors[factor::NORM] = norm;
        factors[factor::FIT] = fit;
        factors[factor::LOW] = grid_low / length;
        factors[factor::STEP] = grid_step / length;
        factors[factor::SQUARE] = vector.iter().map(|x| x * x).sum();
        // Exact in an f32: at most 255 · 16,000 < 2^24.
        factors[factor::LEVELS] = levels.iter().map(|&l| l as u64).sum::<u64>() as f32;
        for (slot, value) in out[planes..].chunks_exact_mut(4).zip(factors) {
            slot.copy_from_slice(&value.to_ne_bytes());
        }
    }

    pub fn prepare(&self, query: &[f32]) -> Result<CodedQuery> {
        self.check_length(query)?;
        let square = query.iter().map(|x| x * x).sum();
        Ok(match self.scheme {
            Scheme::Binary => CodedQuery {
                planes: planes_of(&signs(query), 1),
                low: 0.0,
                step: 0.0,
                sum: 0.0,
                norm: 0.0,
                square,
                rotated: Vec::new(),
            },
            Scheme::Rabitq { .. } => {
                let (rotated, norm) = self.unit_rotated_residual(query);
                let low = rotated.iter().fold(f32::INFINITY, |m, &x| m.min(x));
                let high = rotated.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                let top = ((1 << QUERY_BITS) - 1) as f32;
                let step = ((high - low) / top).max(f32::MIN_POSITIVE);
                let levels: Vec<u32> = rotated
                    .iter()
                    .map(|&x| ((x - low) / step).round().clamp(0.0, top) as u32)
                    .collect();
                let level_sum = levels.iter().sum::<u32>() as f32;
                CodedQuery {
                    planes: planes_of(&levels, QUERY_BITS),
                    low,
                    step,
                    sum: low * rotated.len() as f32 + step * level_sum,
                    norm,
                    square,
                    rotated,
                }
            }
        })
    }

    /// The estimate for a code in its stored form (`Code::as_bytes`, or the bytes an index
    /// holds), which must be `code_bytes()` long.
    #[inline]
    pub fn estimate(&self, query: &CodedQuery, code: &[u8]) -> Estimate {
        let kernels = crate::distance::kernels::kernels();
        let n = words(self.dims());
        match self.scheme {
            Scheme::Binary => Estimate {
                distance: code
                    .chunks_exact(8)
                    .zip(&query.planes)
                    .map(|(c, q)| {
                        (u64::from_ne_bytes(c.try_into().expect("8 bytes")) ^ q).count_ones()
                    })
                    .sum::<u32>() as f32,
                bound: 0.0,
                square: 0.0,
            },
            Scheme::Rabitq { bits } => {
                let planes = bits as usize * n * 8;
                let factor = |i: usize| factor_of(code, planes, i);
                // Σ level_i · q_i with q_i = low + step · u_i, plane by plane.
                let products = (kernels.plane_products)(&code[..planes], &query.planes, n);
                let levels = query.low * factor(factor::LEVELS) + query.step * products as f32;
                let point_dot_query =
                    factor(factor::LOW) * query.sum + factor(factor::STEP) * levels;
                let fit = factor(factor::FIT);
                let fit = if fit.abs() > 1e-6 { fit } else { 1e-6 };
                let ip = point_dot_query / fit;
                let norm = factor(factor::NORM);
                let cross = 2.0 * norm * query.norm;
                // Two independent errors: the code's (RaBitQ's bound) and the query's rounding
                // to levels, uniform within half a step per coordinate, over a unit grid point.
                let code_error = ((1.0 - fit * fit).max(0.0) / (fit * fit)).sqrt() / self.spread;
                let query_error = query.step / (2.0 * 3f32.sqrt() * fit);
                Estimate {
                    distance: norm * norm + query.norm * query.norm - cross * ip,
                    bound: cross
                        * EPSILON0
                        * (code_error * code_error + query_error * query_error).sqrt(),
                    square: factor(factor::SQUARE),
                }
            }
        }
    }
}

impl Quantizer {
    /// A lower bound of the squared Euclidean distance between the query and the coded vector
    /// that holds for every pair, where `estimate`'s bound holds for most: an index that hands
    /// PostgreSQL a distance to re-check must never hand it one above the distance it computes
    /// from the row, or the query fails ("index returned tuples in wrong order").
    ///
    /// On the sphere of unit residuals, the vector's lies at angle β from its grid point (cos β
    /// is the code's fit) and the query's at angle α from that point, computed here from the
    /// query's own floats (not its 4-bit levels), so the angle between the two residuals is at
    /// least |α − β|. The fit was summed in f32, which widens β to a range, and
    /// `lower_bound_slack` covers the rest of the rounding on both sides. Binary codes bound
    /// nothing: 0.
    pub fn lower_bound(&self, query: &CodedQuery, code: &[u8]) -> LowerBound {
        let Scheme::Rabitq { bits } = self.scheme else {
            return LowerBound {
                distance: 0.0,
                square: 0.0,
            };
        };
        let dims = self.dims();
        let n = words(dims);
        let planes = bits as usize * n * 8;
        let factor = |i: usize| factor_of(code, planes, i) as f64;
        // Σ level_i · v_i and Σ level_i², coordinate by coordinate from the planes.
        let (mut dot, mut level_squares, mut sum_v, mut v_square) = (0f64, 0f64, 0f64, 0f64);
        let mut levels = [0u32; 64];
        for w in 0..n {
            word_levels(code, bits as usize, n, w, &mut levels);
            let coordinates = &query.rotated[w * 64..dims.min(w * 64 + 64)];
            for (&v, &level) in coordinates.iter().zip(&levels) {
                let (v, level) = (v as f64, level as f64);
                dot += v * level;
                level_squares += level * level;
                sum_v += v;
                v_square += v * v;
            }
        }
        let (low, step) = (factor(factor::LOW), factor(factor::STEP));
        let point_square = dims as f64 * low * low
            + 2.0 * low * step * factor(factor::LEVELS)
            + step * step * level_squares;
        let lengths = (point_square * v_square).sqrt();
        // cos α; a query on the centroid has no direction, and any angle is possible.
        let query_angle = if lengths > 0.0 {
            ((low * sum_v + step * dot) / lengths)
                .clamp(-1.0, 1.0)
                .acos()
        } else {
            0.0
        };
        let fit = factor(factor::FIT);
        let fit_error = FIT_ROUNDING * dims as f64;
        let (nearest, farthest) = (
            (fit + fit_error).clamp(-1.0, 1.0).acos(),
            (fit - fit_error).clamp(-1.0, 1.0).acos(),
        );
        let gap = if lengths > 0.0 {
            (query_angle - farthest).max(nearest - query_angle).max(0.0) - ANGLE_ROUNDING
        } else {
            0.0
        };
        let most_aligned = gap.max(0.0).cos();
        let (qn, xn) = (query.norm as f64, factor(factor::NORM));
        let bound = qn * qn + xn * xn
            - 2.0 * qn * xn * most_aligned
            - lower_bound_slack(dims) * (qn + xn) * (qn + xn);
        LowerBound {
            distance: bound as f32,
            square: factor(factor::SQUARE) as f32,
        }
    }
}

impl Quantizer {
    /// The vector a RaBitQ code stands for, in the space it was coded in (`code_input`'s): the
    /// centroid plus the residual's length along the code's grid point rotated back. An index
    /// that keeps no full vectors links new items against these; their distances are off by
    /// about what the code's fit leaves (`1 - fit²` of the residual's squared length). `None`
    /// for binary codes, which keep no length.
    pub fn decode(&self, code: &[u8]) -> Option<Vec<f32>> {
        let point = self.residual_point(code)?;
        let mut residual = Vec::with_capacity(point.len());
        self.rotation
            .invert_into(&point, &mut residual, &mut Vec::new());
        residual
            .iter_mut()
            .zip(&self.centroid)
            .for_each(|(r, c)| *r += c);
        Some(residual)
    }

    /// `decode`'s vector rotated (`rotate`), without rotating it back: the rotation keeps every
    /// distance and inner product, so a write that rotates the vectors it scores these against
    /// scores as if on the decoded vectors, for a small part of the cost.
    pub(crate) fn decode_rotated(&self, code: &[u8]) -> Option<Vec<f32>> {
        let mut point = self.residual_point(code)?;
        let centroid = self
            .rotated_centroid
            .get_or_init(|| self.rotation.apply(&self.centroid));
        point.iter_mut().zip(centroid).for_each(|(p, c)| *p += c);
        Some(point)
    }

    /// `vector` rotated as the codes rotate residuals (the centroid not taken away).
    pub(crate) fn rotate(&self, vector: &[f32], out: &mut Vec<f32>, scratch: &mut Vec<f32>) {
        self.rotation.apply_into(vector, out, scratch)
    }

    /// The residual a RaBitQ code stands for, rotated: its grid point scaled by its length.
    /// Level by level, a plane adds its step to each coordinate whose bit is set, eight
    /// coordinates a byte through `BYTE_BITS`: no loop carries a dependence from one
    /// coordinate to the next.
    fn residual_point(&self, code: &[u8]) -> Option<Vec<f32>> {
        let Scheme::Rabitq { bits } = self.scheme else {
            return None;
        };
        let dims = self.dims();
        let n = words(dims);
        let planes = bits as usize * n * 8;
        let factor = |i: usize| factor_of(code, planes, i);
        let norm = factor(factor::NORM);
        let (low, step) = (norm * factor(factor::LOW), norm * factor(factor::STEP));
        let mut point = vec![low; n * 64];
        for k in 0..bits as usize {
            let weight = step * (1u32 << k) as f32;
            for w in 0..n {
                let at = (k * n + w) * 8;
                let word = u64::from_ne_bytes(code[at..at + 8].try_into().expect("8 bytes"));
                for (b, byte) in word.to_le_bytes().into_iter().enumerate() {
                    let out = &mut point[w * 64 + b * 8..w * 64 + b * 8 + 8];
                    for (p, bit) in out.iter_mut().zip(BYTE_BITS[byte as usize]) {
                        *p += bit * weight;
                    }
                }
            }
        }
        point.truncate(dims);
        Some(point)
    }
}

/// Byte b's bits as eight floats, lowest first: 1.0 where set.
const BYTE_BITS: [[f32; 8]; 256] = {
    let mut table = [[0.0f32; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut t = 0;
        while t < 8 {
            if (b >> t) & 1 == 1 {
                table[b][t] = 1.0;
            }
            t += 1;
        }
        b += 1;
    }
    table
};

/// The levels of coordinates `64·w ..` of a code of `bits` planes of `n` words each, into
/// `levels` (a coordinate past the last reads 0).
#[inline]
fn word_levels(code: &[u8], bits: usize, n: usize, w: usize, levels: &mut [u32; 64]) {
    levels.fill(0);
    for k in 0..bits {
        let at = (k * n + w) * 8;
        let mut word = u64::from_ne_bytes(code[at..at + 8].try_into().expect("8 bytes"));
        while word != 0 {
            levels[word.trailing_zeros() as usize] |= 1 << k;
            word &= word - 1;
        }
    }
}

/// The level of coordinate `x` on a grid of `top + 1` levels over [-1/inverse, 1/inverse] (the
/// inverse of the half-width, so that the search for one multiplies), as a float.
#[inline(always)]
pub(crate) fn grid_level(x: f32, inverse: f32, top: f32) -> f32 {
    // Adding and taking away 1.5·2^23 rounds to the nearest whole number (ties to even) for
    // |v| < 2^22, without a C-library call per coordinate on the base x86-64 target.
    const ROUNDER: f32 = 12_582_912.0;
    // max and min, not clamp: clamp checks its bounds on each call, which keeps the search's
    // loop out of vector registers.
    let v = ((x * inverse + 1.0) * (0.5 * top)).max(0.0).min(top);
    (v + ROUNDER) - ROUNDER
}

/// The half-width of the grid whose point has the largest cosine with `unit` (of largest
/// coordinate `largest`): a coarse pass a twentieth of `largest` apart, then a fine one around
/// the best. The fewer the bits, the more the best clips, so the coarse pass starts low.
fn fitted_half_width(unit: &[f32], largest: f32, top: f32) -> f32 {
    let grid_fit = crate::distance::kernels::kernels().grid_fit;
    let fit = |half: f32| grid_fit(unit, half, top);
    let best_of = |halves: &mut dyn Iterator<Item = f32>, start: (f32, f32)| {
        halves.fold(start, |best, half| {
            let f = fit(half);
            if f > best.1 {
                (half, f)
            } else {
                best
            }
        })
    };
    let coarse = best_of(
        &mut (5..20).map(|i| largest * i as f32 / 20.0),
        (largest, fit(largest)),
    );
    let fine = best_of(
        &mut (-4..=4)
            .filter(|&i| i != 0)
            .map(|i| coarse.0 + largest * i as f32 / 100.0)
            .filter(|&h| h > 0.0 && h <= largest),
        coarse,
    );
    fine.0
}

/// A squared Euclidean distance no larger than the true one (`Quantizer::lower_bound`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LowerBound {
    pub distance: f32,
    /// The coded vector's squared length (zero for binary codes).
    pub square: f32,
}

/// How far a fit summed in f32 over d coordinates may be from the true cosine, per coordinate:
/// the worst case of a running sum (d units in the last place of terms whose magnitudes add up
/// to at most 1), for the fit and for the two lengths it divides by.
const FIT_ROUNDING: f64 = 3.0 * f32::EPSILON as f64 / 2.0;

/// Radians the rotation's rounding may move either residual by.
const ANGLE_ROUNDING: f64 = 1e-5;

/// The share of `(|q − c| + |x − c|)²` a lower bound leaves below the squared distance, for the
/// rounding of the residuals' lengths and of PostgreSQL's own computation of the distance; at
/// least 10⁻⁴, and past about 420 dimensions four times the worst relative error of an f32
/// sum of d terms.
pub(crate) fn lower_bound_slack(dims: usize) -> f64 {
    (4.0 * dims as f64 * f32::EPSILON as f64 / 2.0).max(1e-4)
}

/// Bytes of one code of `scheme` at `dims`.
pub fn code_bytes(scheme: Scheme, dims: usize) -> usize {
    match scheme {
        Scheme::Rabitq { bits } => words(dims) * 8 * bits as usize + FACTOR_BYTES,
        Scheme::Binary => words(dims) * 8,
    }
}

/// 64-bit words per plane of `dims` coordinates.
fn words(dims: usize) -> usize {
    dims.div_ceil(64)
}

/// One level per coordinate: 1 when it is positive.
fn signs(vector: &[f32]) -> Vec<u32> {
    vector.iter().map(|&x| (x > 0.0) as u32).collect()
}

/// `bits` planes of `levels`, lowest bit first.
fn planes_of(levels: &[u32], bits: usize) -> Vec<u64> {
    let n = words(levels.len());
    let mut planes = vec![0u64; n * bits];
    for (i, &level) in levels.iter().enumerate() {
        for k in 0..bits {
            if level >> k & 1 == 1 {
                planes[k * n + i / 64] |= 1 << (i % 64);
            }
        }
    }
    planes
}

/// Writes `planes_of(levels, bits)` at the start of `out` as native-endian bytes; returns how
/// many bytes that took.
fn write_planes(levels: &[u32], bits: usize, out: &mut [u8]) -> usize {
    let planes = planes_of(levels, bits);
    let bytes: &[u8] = bytemuck::cast_slice(&planes);
    out[..bytes.len()].copy_from_slice(bytes);
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::rotation::SplitMix;
    use super::*;

    fn random_unit(rng: &mut SplitMix, dims: usize, base: &[f32]) -> Vec<f32> {
        let v: Vec<f32> = (0..dims)
            .map(|i| base[i] + ((rng.next() % 20001) as f32 / 10000.0 - 1.0))
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn squared(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    }

    /// Mean absolute error of the estimates, and the share of pairs within their bound.
    fn errors(scheme: Scheme, dims: usize) -> (f32, f32) {
        let mut rng = SplitMix(dims as u64 * 31 + 7);
        let base: Vec<f32> = (0..dims).map(|i| (i % 7) as f32 / 7.0).collect();
        let data: Vec<Vec<f32>> = (0..300)
            .map(|_| random_unit(&mut rng, dims, &base))
            .collect();
        let centroid = Quantizer::mean(dims, data.iter().map(Vec::as_slice));
        let quantizer = Quantizer::new(scheme, centroid, 5).unwrap();
        let codes: Vec<Code> = data.iter().map(|v| quantizer.encode(v).unwrap()).collect();
        let (mut error, mut within, mut pairs) = (0.0f32, 0usize, 0usize);
        for q in data.iter().take(20) {
            let prepared = quantizer.prepare(q).unwrap();
            for (v, code) in data.iter().zip(&codes) {
                let e = quantizer.estimate(&prepared, code.as_bytes());
                let truth = squared(q, v);
                error += (e.distance - truth).abs();
                within += ((e.distance - truth).abs() <= e.bound + 1e-5) as usize;
                pairs += 1;
            }
        }
        (error / pairs as f32, within as f32 / pairs as f32)
    }

    #[test]
    fn rabitq_estimates_stay_within_their_bound_and_more_bits_estimate_better() {
        for dims in [64, 384, 1000] {
            let (one, within) = errors(Scheme::Rabitq { bits: 1 }, dims);
            let (four, within4) = errors(Scheme::Rabitq { bits: 4 }, dims);
            println!("{dims}: mean error 1 bit {one:.4} ({within:.3} within), 4 bits {four:.4} ({within4:.3})");
            // The error is about normal: 1.9 standard deviations hold about 94% of pairs.
            assert!(
                within >= 0.92 && within4 >= 0.92,
                "{dims}: {within} {within4}"
            );
            assert!(four < one / 3.0, "{dims}: {four} against {one}");
        }
    }

    /// Vectors that make bounds hard: clustered around an offset, exact copies, the centroid
    /// itself, points opposite each other, a few far out, and one of zero length.
    fn awkward_set(rng: &mut SplitMix, dims: usize, offset: f32) -> Vec<Vec<f32>> {
        let base: Vec<f32> = (0..dims).map(|i| offset + (i % 5) as f32 / 5.0).collect();
        let mut data: Vec<Vec<f32>> = (0..120)
            .map(|_| {
                let u = random_unit(rng, dims, &base);
                u.iter().zip(&base).map(|(x, b)| x * 0.3 + b).collect()
            })
            .collect();
        data.push(data[3].clone());
        data.push(data[3].iter().map(|x| -x).collect());
        data.push(data[5].iter().map(|x| x * 40.0).collect());
        data.push(vec![0.0; dims]);
        let centroid = Quantizer::mean(dims, data.iter().map(Vec::as_slice));
        data.push(centroid);
        data
    }

    #[test]
    fn lower_bounds_never_exceed_the_distance_and_tighten_with_bits() {
        for dims in [3, 64, 385, 1000] {
            let mut rng = SplitMix(dims as u64 * 17 + 1);
            for offset in [0.0, 3.0] {
                let data = awkward_set(&mut rng, dims, offset);
                let centroid = Quantizer::mean(dims, data.iter().map(Vec::as_slice));
                let mut slack_by_bits = Vec::new();
                for bits in 1..=8 {
                    let quantizer =
                        Quantizer::new(Scheme::Rabitq { bits }, centroid.clone(), 9).unwrap();
                    let codes: Vec<Code> =
                        data.iter().map(|v| quantizer.encode(v).unwrap()).collect();
                    let mut slack = 0.0f64;
                    for q in data.iter().step_by(7) {
                        let prepared = quantizer.prepare(q).unwrap();
                        for (v, code) in data.iter().zip(&codes) {
                            let truth: f64 = q
                                .iter()
                                .zip(v)
                                .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                                .sum();
                            let bound =
                                quantizer.lower_bound(&prepared, code.as_bytes()).distance as f64;
                            assert!(
                                bound <= truth,
                                "{dims} dims, offset {offset}, {bits} bits: {bound} > {truth}"
                            );
                            slack += truth - bound;
                        }
                    }
                    slack_by_bits.push(slack);
                }
                // At three dimensions a grid point is most of the vector whatever the bits.
                if dims > 3 {
                    assert!(
                        slack_by_bits[7] < slack_by_bits[3] / 2.0
                            && slack_by_bits[3] < slack_by_bits[0] / 2.0,
                        "{dims} dims, offset {offset}: {slack_by_bits:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn lower_bounds_at_many_bits_are_close_to_the_distance() {
        let dims = 384;
        let mut rng = SplitMix(4);
        let base: Vec<f32> = (0..dims).map(|i| (i % 7) as f32 / 7.0).collect();
        let data: Vec<Vec<f32>> = (0..300)
            .map(|_| random_unit(&mut rng, dims, &base))
            .collect();
        let centroid = Quantizer::mean(dims, data.iter().map(Vec::as_slice));
        let quantizer = Quantizer::new(Scheme::Rabitq { bits: 8 }, centroid, 5).unwrap();
        let (mut gap, mut total) = (0.0f32, 0.0f32);
        for q in data.iter().take(10) {
            let prepared = quantizer.prepare(q).unwrap();
            for v in &data {
                let code = quantizer.encode(v).unwrap();
                let truth = squared(q, v);
                gap += truth - quantizer.lower_bound(&prepared, code.as_bytes()).distance;
                total += truth;
            }
        }
        assert!(gap < 0.05 * total, "{gap} of {total}");
    }

    /// Mean fit (cosine of grid point and rotated residual) of `data`'s codes on `grid`.
    fn mean_fit(data: &[Vec<f32>], bits: u8, grid: Grid) -> f32 {
        let dims = data[0].len();
        let centroid = Quantizer::mean(dims, data.iter().map(Vec::as_slice));
        let quantizer = Quantizer::new(Scheme::Rabitq { bits }, centroid, 11)
            .unwrap()
            .with_grid(grid);
        let planes = code_bytes(Scheme::Rabitq { bits }, dims) - FACTOR_BYTES;
        data.iter()
            .map(|v| factor_of(quantizer.encode(v).unwrap().as_bytes(), planes, factor::FIT))
            .sum::<f32>()
            / data.len() as f32
    }

    #[test]
    fn fitted_grids_fit_at_least_as_well_and_better_at_two_to_four_bits() {
        let dims = 384;
        let mut rng = SplitMix(21);
        let base: Vec<f32> = (0..dims).map(|i| (i % 11) as f32 / 11.0).collect();
        let data: Vec<Vec<f32>> = (0..200)
            .map(|_| random_unit(&mut rng, dims, &base))
            .collect();
        for bits in 1..=8 {
            let (span, fitted) = (
                mean_fit(&data, bits, Grid::Span),
                mean_fit(&data, bits, Grid::Fitted),
            );
            println!("{bits} bits: fit {span:.4} spanning, {fitted:.4} fitted");
            assert!(fitted >= span - 1e-6, "{bits} bits: {fitted} < {span}");
            // The shortfall from 1 shrinks by a fifth or more at 2 to 4 bits; at one bit the
            // grid is the signs either way.
            match bits {
                1 => assert_eq!(fitted, span),
                2..=4 => assert!(1.0 - fitted < 0.8 * (1.0 - span), "{bits}: {fitted} {span}"),
                _ => {}
            }
        }
    }

    #[test]
    fn codes_carry_the_squared_length_and_bad_input_is_refused() {
        let quantizer = Quantizer::new(Scheme::Rabitq { bits: 2 }, vec![0.1; 70], 3).unwrap();
        let v: Vec<f32> = (0..70).map(|i| i as f32 / 70.0).collect();
        let code = quantizer.encode(&v).unwrap();
        assert_eq!(code.as_bytes().len(), 2 * 2 * 8 + 24);
        let q = quantizer.prepare(&v).unwrap();
        let e = quantizer.estimate(&q, code.as_bytes());
        let square: f32 = v.iter().map(|x| x * x).sum();
        assert!((e.square - square).abs() < 1e-4, "{} {square}", e.square);
        assert!(e.distance.abs() <= e.bound + 1e-4, "{e:?}");
        assert!(quantizer.encode(&v[..69]).is_err());
        assert!(quantizer.prepare(&[1.0; 71]).is_err());
        for bits in [0, 9] {
            assert!(Quantizer::new(Scheme::Rabitq { bits }, vec![0.0; 4], 1).is_err());
        }
        assert!(Quantizer::new(Scheme::Rabitq { bits: 1 }, vec![f32::NAN; 4], 1).is_err());
    }

    #[test]
    fn a_decoded_code_lies_as_far_from_its_vector_as_its_fit_says() {
        for dims in [3, 64, 385] {
            let mut rng = SplitMix(dims as u64);
            let base: Vec<f32> = (0..dims).map(|i| (i % 5) as f32 / 5.0).collect();
            let data: Vec<Vec<f32>> = (0..50)
                .map(|_| random_unit(&mut rng, dims, &base))
                .collect();
            let centroid = Quantizer::mean(dims, data.iter().map(Vec::as_slice));
            let mut last = f64::INFINITY;
            for bits in 2..=8 {
                let quantizer =
                    Quantizer::new(Scheme::Rabitq { bits }, centroid.clone(), 5).unwrap();
                let mut error = 0f64;
                for x in &data {
                    let code = quantizer.encode(x).unwrap();
                    let decoded = quantizer.decode(code.as_bytes()).unwrap();
                    let planes = bits as usize * words(dims) * 8;
                    let (norm, fit) = (
                        factor_of(code.as_bytes(), planes, factor::NORM) as f64,
                        factor_of(code.as_bytes(), planes, factor::FIT) as f64,
                    );
                    // Both unit residuals: |u - p|² = 2 - 2·fit.
                    let expected = norm * norm * (2.0 - 2.0 * fit);
                    let got = squared(x, &decoded) as f64;
                    assert!(
                        (got - expected).abs() < 1e-4 * (1.0 + norm * norm),
                        "{dims} dims, {bits} bits: {got} against {expected}"
                    );
                    error += got;
                }
                assert!(error < last, "{dims} dims: {bits} bits decode no closer");
                last = error;
            }
            let binary = Quantizer::new(Scheme::Binary, centroid, 5).unwrap();
            assert_eq!(
                binary.decode(binary.encode(&data[0]).unwrap().as_bytes()),
                None
            );
        }
    }

    #[test]
    fn planes_hold_every_level() {
        for bits in 1..=8usize {
            let levels: Vec<u32> = (0..137).map(|i| (i * 7) % (1 << bits)).collect();
            let planes = planes_of(&levels, bits);
            let n = words(levels.len());
            for (i, &level) in levels.iter().enumerate() {
                let read = (0..bits)
                    .map(|k| ((planes[k * n + i / 64] >> (i % 64)) & 1) << k)
                    .sum::<u64>();
                assert_eq!(read, level as u64, "{bits} bits, coordinate {i}");
            }
        }
    }

    #[test]
    fn automatic_codes_need_a_euclidean_order_and_enough_dimensions() {
        use crate::Metric;
        let codes = Quantization::Rabitq { bits: 2 };
        for metric in [
            Metric::Euclidean,
            Metric::Cosine,
            Metric::InnerProduct,
            Metric::HalfCosine,
        ] {
            assert_eq!(Quantization::automatic(metric, 384), codes, "{metric:?}");
            assert_eq!(Quantization::automatic(metric, 256), codes, "{metric:?}");
            assert_eq!(Quantization::automatic(metric, 255), Quantization::None);
        }
        for metric in [Metric::Manhattan, Metric::HalfManhattan, Metric::Hamming] {
            assert_eq!(Quantization::automatic(metric, 1024), Quantization::None);
        }
    }

    #[test]
    fn binary_codes_count_differing_signs() {
        let quantizer = Quantizer::new(Scheme::Binary, vec![0.0; 10], 1).unwrap();
        let a = quantizer
            .encode(&[1.0, -1.0, 1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0, -1.0])
            .unwrap();
        let q = quantizer
            .prepare(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
            .unwrap();
        assert_eq!(quantizer.estimate(&q, a.as_bytes()).distance, 3.0);
        assert_eq!(quantizer.code_bytes(), 8);
    }
}
