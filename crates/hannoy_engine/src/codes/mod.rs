//! Compact codes of vectors for estimating distances without reading them: the candidates of the
//! issue "An index far larger than RAM". Not used by the graph yet; `benches/codes.rs` compares
//! the schemes on recall at equal bytes.
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

mod rotation;

pub use rotation::Rotation;

/// How vectors are coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `bits` per coordinate (1 to 8) of the rotated residual, and four factors.
    Rabitq { bits: u8 },
    /// One bit per coordinate, no factors.
    Binary,
}

/// The constant of RaBitQ's error bound: the estimate is within `EPSILON0 · sqrt((1 - f²) / f²)
/// / sqrt(d - 1)` of the true inner product of unit residuals with a probability that grows
/// with it (f is a code's factor `fit`). The error is close to normal with that scale, so the
/// paper's 1.9 holds for about 94% of pairs: enough to decide what to re-rank, not a lower
/// bound to hand PostgreSQL (the codes-only mode will need about 3).
const EPSILON0: f32 = 1.9;

/// The centroid and rotation every code of an index is made with.
pub struct Quantizer {
    centroid: Vec<f32>,
    rotation: Rotation,
    scheme: Scheme,
}

/// One vector's code.
#[derive(Debug, Clone, PartialEq)]
pub struct Code {
    /// Bit planes of `words(d)` words each, lowest first: bit i of plane k is bit k of
    /// coordinate i's level (RaBitQ) or its sign (binary). Planes let one popcount of a word
    /// pair sum 64 coordinates.
    pub planes: Vec<u64>,
    /// The residual's length.
    pub norm: f32,
    /// The normalised grid point's inner product with the unit rotated residual (RaBitQ only).
    pub fit: f32,
    /// The normalised grid point is `low + level · step` per coordinate (RaBitQ only).
    pub low: f32,
    pub step: f32,
}

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
}

/// An estimated squared Euclidean distance, or a Hamming distance for binary codes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub distance: f32,
    /// How far the true squared distance may lie from `distance` (zero when the scheme gives
    /// no bound).
    pub bound: f32,
}

impl Quantizer {
    pub fn new(scheme: Scheme, centroid: Vec<f32>, seed: u64) -> Quantizer {
        if let Scheme::Rabitq { bits } = scheme {
            assert!((1..=8).contains(&bits), "1 to 8 bits per coordinate");
        }
        Quantizer {
            rotation: Rotation::new(centroid.len(), seed),
            centroid,
            scheme,
        }
    }

    /// The mean of `vectors`: the centroid RaBitQ codes residuals from.
    pub fn mean<'v>(dims: usize, vectors: impl Iterator<Item = &'v [f32]>) -> Vec<f32> {
        let mut sum = vec![0.0f64; dims];
        let mut count = 0usize;
        for v in vectors {
            sum.iter_mut().zip(v).for_each(|(s, x)| *s += *x as f64);
            count += 1;
        }
        sum.iter()
            .map(|s| (s / count.max(1) as f64) as f32)
            .collect()
    }

    pub fn dims(&self) -> usize {
        self.centroid.len()
    }

    /// Bytes of one code as an index would store it.
    pub fn code_bytes(&self) -> usize {
        match self.scheme {
            Scheme::Rabitq { bits } => words(self.dims()) * 8 * bits as usize + 16,
            Scheme::Binary => words(self.dims()) * 8,
        }
    }

    pub fn encode(&self, vector: &[f32]) -> Code {
        match self.scheme {
            Scheme::Binary => Code {
                planes: planes_of(&signs(vector), 1),
                norm: 0.0,
                fit: 0.0,
                low: 0.0,
                step: 0.0,
            },
            Scheme::Rabitq { bits } => self.encode_rabitq(vector, bits),
        }
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

    fn encode_rabitq(&self, vector: &[f32], bits: u8) -> Code {
        let (rotated, norm) = self.unit_rotated_residual(vector);
        // A symmetric grid of 2^bits levels over the largest coordinate; at one bit the levels
        // are the signs and the normalised grid point is ±1/sqrt(d) per coordinate.
        let top = ((1u32 << bits) - 1) as f32;
        let largest = rotated
            .iter()
            .fold(0.0f32, |m, x| m.max(x.abs()))
            .max(f32::MIN_POSITIVE);
        let (grid_low, grid_step) = (-largest, 2.0 * largest / top);
        let levels: Vec<u32> = rotated
            .iter()
            .map(|&x| ((x - grid_low) / grid_step).round().clamp(0.0, top) as u32)
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
        let (low, step) = (grid_low / length, grid_step / length);
        let fit = point
            .iter()
            .zip(&rotated)
            .map(|(p, r)| p / length * r)
            .sum::<f32>();
        Code {
            planes: planes_of(&levels, bits as usize),
            norm,
            fit,
            low,
            step,
        }
    }

    pub fn prepare(&self, query: &[f32]) -> CodedQuery {
        match self.scheme {
            Scheme::Binary => CodedQuery {
                planes: planes_of(&signs(query), 1),
                low: 0.0,
                step: 0.0,
                sum: 0.0,
                norm: 0.0,
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
                }
            }
        }
    }

    pub fn estimate(&self, query: &CodedQuery, code: &Code) -> Estimate {
        let kernels = crate::distance::kernels::kernels();
        match self.scheme {
            Scheme::Binary => Estimate {
                distance: (kernels.hamming)(&query.planes, &code.planes) as f32,
                bound: 0.0,
            },
            Scheme::Rabitq { bits } => {
                // Σ level_i · q_i with q_i = low + step · u_i, plane by plane.
                let n = words(self.dims());
                let mut ones = 0u64;
                let mut products = 0u64;
                for k in 0..bits as usize {
                    let plane = &code.planes[k * n..(k + 1) * n];
                    ones += ((kernels.and_count)(plane, plane) as u64) << k;
                    for j in 0..QUERY_BITS {
                        let q = &query.planes[j * n..(j + 1) * n];
                        products += ((kernels.and_count)(plane, q) as u64) << (k + j);
                    }
                }
                let levels = query.low * ones as f32 + query.step * products as f32;
                let point_dot_query = code.low * query.sum + code.step * levels;
                let fit = if code.fit.abs() > 1e-6 {
                    code.fit
                } else {
                    1e-6
                };
                let ip = point_dot_query / fit;
                let cross = 2.0 * code.norm * query.norm;
                // Two independent errors: the code's (RaBitQ's bound) and the query's rounding
                // to levels, uniform within half a step per coordinate, over a unit grid point.
                let d = self.dims().max(2) as f32;
                let code_error = (1.0 - fit * fit).max(0.0) / (fit * fit) / (d - 1.0);
                let query_error = query.step / (2.0 * 3f32.sqrt() * fit);
                Estimate {
                    distance: code.norm * code.norm + query.norm * query.norm - cross * ip,
                    bound: cross * EPSILON0 * (code_error + query_error * query_error).sqrt(),
                }
            }
        }
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
        let quantizer = Quantizer::new(scheme, centroid, 5);
        let codes: Vec<Code> = data.iter().map(|v| quantizer.encode(v)).collect();
        let (mut error, mut within, mut pairs) = (0.0f32, 0usize, 0usize);
        for q in data.iter().take(20) {
            let prepared = quantizer.prepare(q);
            for (v, code) in data.iter().zip(&codes) {
                let e = quantizer.estimate(&prepared, code);
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
    fn binary_codes_count_differing_signs() {
        let quantizer = Quantizer::new(Scheme::Binary, vec![0.0; 10], 1);
        let a = quantizer.encode(&[1.0, -1.0, 1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0, -1.0]);
        let q = quantizer.prepare(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(quantizer.estimate(&q, &a).distance, 3.0);
        assert_eq!(quantizer.code_bytes(), 8);
    }
}
