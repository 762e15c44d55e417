//! Compact codes of vectors for estimating distances without reading them: the candidates of the
//! issue "An index far larger than RAM". Not used by the graph yet; `benches/codes.rs` compares
//! the schemes on recall at equal bytes.
//!
//! - **RaBitQ** (Gao and Long, SIGMOD 2024; the extension to more bits, SIGMOD 2025): the
//!   residual from a centroid, normalised and randomly rotated, is rounded to a grid of `bits`
//!   bits per coordinate. The inner product of the query's rotated residual with the normalised
//!   grid point, divided by that point's inner product with the vector's own rotated residual,
//!   estimates the inner product of the residuals without bias, within a bound that shrinks as
//!   1/sqrt(d).
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
    /// `bits` per coordinate, packed little-end first.
    pub packed: Vec<u8>,
    /// The residual's length.
    pub norm: f32,
    /// The normalised grid point's inner product with the unit rotated residual (RaBitQ only).
    pub fit: f32,
    /// The normalised grid point is `low + level · step` per coordinate (RaBitQ only).
    pub low: f32,
    pub step: f32,
}

/// A query prepared for estimates against codes.
pub struct CodedQuery {
    /// Rotated unit residual (RaBitQ) or the query as given (binary).
    rotated: Vec<f32>,
    sum: f32,
    norm: f32,
    signs: Vec<u8>,
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
            Scheme::Rabitq { bits } => (self.dims() * bits as usize).div_ceil(8) + 16,
            Scheme::Binary => self.dims().div_ceil(8),
        }
    }

    pub fn encode(&self, vector: &[f32]) -> Code {
        match self.scheme {
            Scheme::Binary => Code {
                packed: pack_signs(vector),
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
        let top = ((1u32 << bits) - 1) as f32;
        let largest = rotated.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let (grid_low, grid_step) = if largest > 0.0 {
            (-largest, 2.0 * largest / top.max(1.0))
        } else {
            (-1.0, 2.0 / top.max(1.0))
        };
        let levels: Vec<u32> = rotated
            .iter()
            .map(|&x| {
                if bits == 1 {
                    (x > 0.0) as u32
                } else {
                    ((x - grid_low) / grid_step).round().clamp(0.0, top) as u32
                }
            })
            .collect();
        // The grid point, normalised: one bit is ±1/sqrt(d) per coordinate.
        let point: Vec<f32> = levels
            .iter()
            .map(|&l| {
                if bits == 1 {
                    2.0 * l as f32 - 1.0
                } else {
                    grid_low + l as f32 * grid_step
                }
            })
            .collect();
        let length = point
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        let (low, step) = if bits == 1 {
            (-1.0 / length, 2.0 / length)
        } else {
            (grid_low / length, grid_step / length)
        };
        let fit = point
            .iter()
            .zip(&rotated)
            .map(|(p, r)| p / length * r)
            .sum::<f32>();
        Code {
            packed: pack_levels(&levels, bits),
            norm,
            fit,
            low,
            step,
        }
    }

    pub fn prepare(&self, query: &[f32]) -> CodedQuery {
        match self.scheme {
            Scheme::Binary => CodedQuery {
                rotated: Vec::new(),
                sum: 0.0,
                norm: 0.0,
                signs: pack_signs(query),
            },
            Scheme::Rabitq { .. } => {
                let (rotated, norm) = self.unit_rotated_residual(query);
                CodedQuery {
                    sum: rotated.iter().sum(),
                    rotated,
                    norm,
                    signs: Vec::new(),
                }
            }
        }
    }

    pub fn estimate(&self, query: &CodedQuery, code: &Code) -> Estimate {
        match self.scheme {
            Scheme::Binary => Estimate {
                distance: query
                    .signs
                    .iter()
                    .zip(&code.packed)
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum::<u32>() as f32,
                bound: 0.0,
            },
            Scheme::Rabitq { bits } => {
                let levels = level_dot(&code.packed, bits, &query.rotated);
                let point_dot_query = code.low * query.sum + code.step * levels;
                let fit = if code.fit.abs() > 1e-6 {
                    code.fit
                } else {
                    1e-6
                };
                let ip = point_dot_query / fit;
                let cross = 2.0 * code.norm * query.norm;
                let spread = ((1.0 - fit * fit).max(0.0) / (fit * fit)).sqrt();
                let d = self.dims().max(2) as f32;
                Estimate {
                    distance: code.norm * code.norm + query.norm * query.norm - cross * ip,
                    bound: cross * EPSILON0 * spread / (d - 1.0).sqrt(),
                }
            }
        }
    }
}

/// One bit per coordinate: set when it is positive.
fn pack_signs(vector: &[f32]) -> Vec<u8> {
    let mut packed = vec![0u8; vector.len().div_ceil(8)];
    for (i, &x) in vector.iter().enumerate() {
        if x > 0.0 {
            packed[i / 8] |= 1 << (i % 8);
        }
    }
    packed
}

fn pack_levels(levels: &[u32], bits: u8) -> Vec<u8> {
    let bits = bits as usize;
    let mut packed = vec![0u8; (levels.len() * bits).div_ceil(8)];
    for (i, &level) in levels.iter().enumerate() {
        for b in 0..bits {
            if level >> b & 1 == 1 {
                let at = i * bits + b;
                packed[at / 8] |= 1 << (at % 8);
            }
        }
    }
    packed
}

/// Σ level_i · query_i over the packed levels.
fn level_dot(packed: &[u8], bits: u8, query: &[f32]) -> f32 {
    let bits = bits as usize;
    if bits == 1 {
        let mut sum = 0.0f32;
        for (i, &q) in query.iter().enumerate() {
            if packed[i / 8] >> (i % 8) & 1 == 1 {
                sum += q;
            }
        }
        return sum;
    }
    let mask = (1u32 << bits) - 1;
    query
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let at = i * bits;
            let word =
                packed[at / 8] as u32 | (packed.get(at / 8 + 1).copied().unwrap_or(0) as u32) << 8;
            ((word >> (at % 8)) & mask) as f32 * q
        })
        .sum()
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
    fn codes_pack_and_read_back_every_level() {
        for bits in 1..=8u8 {
            let levels: Vec<u32> = (0..37).map(|i| i % (1 << bits)).collect();
            let packed = pack_levels(&levels, bits);
            for (i, &level) in levels.iter().enumerate() {
                let mut unit = vec![0.0f32; levels.len()];
                unit[i] = 1.0;
                assert_eq!(
                    level_dot(&packed, bits, &unit),
                    level as f32,
                    "{bits} bits, {i}"
                );
            }
        }
    }

    #[test]
    fn binary_codes_count_differing_signs() {
        let quantizer = Quantizer::new(Scheme::Binary, vec![0.0; 10], 1);
        let a = quantizer.encode(&[1.0, -1.0, 1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0, -1.0]);
        let q = quantizer.prepare(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(quantizer.estimate(&q, &a).distance, 3.0);
        assert_eq!(quantizer.code_bytes(), 2);
    }
}
