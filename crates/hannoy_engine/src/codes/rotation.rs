//! A random orthogonal transform of any dimension in O(d log d) time and O(d) memory: rounds of a
//! random permutation, random signs and a normalised Walsh-Hadamard transform on blocks whose
//! sizes are the powers of two that add up to d. A dense random rotation would need d² floats
//! (1 GB at 16,000 dimensions); each step here is orthogonal, so their composition is, and four
//! rounds spread every input coordinate over all outputs.

/// Rounds of permutation, signs and block transform.
const ROUNDS: usize = 4;

pub struct Rotation {
    dims: usize,
    rounds: Vec<Round>,
    /// Block sizes, largest first, summing to `dims`.
    blocks: Vec<usize>,
}

struct Round {
    permutation: Vec<u32>,
    signs: Vec<f32>,
}

impl Rotation {
    pub fn new(dims: usize, seed: u64) -> Rotation {
        Rotation::with_rounds(dims, seed, ROUNDS)
    }

    /// A transform of `rounds` rounds. Two already spread any one coordinate over a block of
    /// many (unless both permutations put it in a small block), which is enough to keep a few
    /// large coordinates from standing out, though not for sign codes.
    pub fn with_rounds(dims: usize, seed: u64, rounds: usize) -> Rotation {
        let mut rng = SplitMix(seed);
        let rounds = (0..rounds)
            .map(|_| {
                let mut permutation: Vec<u32> = (0..dims as u32).collect();
                for i in (1..dims).rev() {
                    permutation.swap(i, rng.below(i + 1));
                }
                let signs = (0..dims)
                    .map(|_| if rng.next() & 1 == 0 { 1.0 } else { -1.0 })
                    .collect();
                Round { permutation, signs }
            })
            .collect();
        let blocks = (0..usize::BITS)
            .rev()
            .map(|bit| 1usize << bit)
            .filter(|&size| dims & size != 0)
            .collect();
        Rotation {
            dims,
            rounds,
            blocks,
        }
    }

    /// `x` rotated; `x.len()` must be `dims`.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        self.apply_into(x, &mut out, &mut Vec::new());
        out
    }

    /// `x` rotated into `out`, with `scratch` for the steps between: for callers that rotate
    /// many vectors and would otherwise allocate two per vector.
    pub fn apply_into(&self, x: &[f32], out: &mut Vec<f32>, scratch: &mut Vec<f32>) {
        assert_eq!(x.len(), self.dims, "a vector of another dimension");
        out.clear();
        out.extend_from_slice(x);
        scratch.clear();
        scratch.resize(self.dims, 0.0);
        for round in &self.rounds {
            for (to, (&from, &sign)) in scratch
                .iter_mut()
                .zip(round.permutation.iter().zip(&round.signs))
            {
                *to = out[from as usize] * sign;
            }
            std::mem::swap(out, scratch);
            self.transform_blocks(out);
        }
    }

    /// `y` rotated back: `invert_into(apply(x))` is `x` up to rounding. Each round's steps
    /// undone in reverse order (the scaled block transform is its own inverse).
    pub fn invert_into(&self, y: &[f32], out: &mut Vec<f32>, scratch: &mut Vec<f32>) {
        assert_eq!(y.len(), self.dims, "a vector of another dimension");
        out.clear();
        out.extend_from_slice(y);
        scratch.clear();
        scratch.resize(self.dims, 0.0);
        for round in self.rounds.iter().rev() {
            self.transform_blocks(out);
            for (to, (&from, &sign)) in out.iter().zip(round.permutation.iter().zip(&round.signs)) {
                scratch[from as usize] = to * sign;
            }
            std::mem::swap(out, scratch);
        }
    }

    /// The scaled Walsh-Hadamard transform of each block of `v`, in place.
    fn transform_blocks(&self, v: &mut [f32]) {
        let mut start = 0;
        for &size in &self.blocks {
            hadamard(&mut v[start..start + size]);
            start += size;
        }
    }
}

/// The Walsh-Hadamard transform of a power-of-two block, scaled to be orthogonal. Each level's
/// butterflies run over two halves of a slice side by side, which the compiler vectorises.
fn hadamard(block: &mut [f32]) {
    let n = block.len();
    let mut half = 1;
    while half < n {
        for pair in block.chunks_exact_mut(2 * half) {
            let (low, high) = pair.split_at_mut(half);
            for (a, b) in low.iter_mut().zip(high.iter_mut()) {
                let (x, y) = (*a, *b);
                *a = x + y;
                *b = x - y;
            }
        }
        half *= 2;
    }
    let scale = 1.0 / (n as f32).sqrt();
    block.iter_mut().for_each(|v| *v *= scale);
}

/// A small, fixed generator: codes must be reproducible from the seed stored with an index.
pub(crate) struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    #[test]
    fn rotations_keep_inner_products_at_any_dimension() {
        for dims in [1, 3, 7, 64, 384, 1000, 3072] {
            let rotation = Rotation::new(dims, 7);
            let mut rng = SplitMix(dims as u64);
            let mut random = || -> Vec<f32> {
                (0..dims)
                    .map(|_| (rng.next() % 2001) as f32 / 1000.0 - 1.0)
                    .collect()
            };
            let (a, b) = (random(), random());
            let (ra, rb) = (rotation.apply(&a), rotation.apply(&b));
            let tolerance = 1e-4 * dot(&a, &a).max(1.0);
            assert!((dot(&a, &b) - dot(&ra, &rb)).abs() < tolerance, "{dims}");
            assert!((dot(&a, &a) - dot(&ra, &ra)).abs() < tolerance, "{dims}");
        }
    }

    #[test]
    fn rotating_back_gives_the_vector_again() {
        for dims in [1, 3, 7, 64, 384, 1000, 3072] {
            let rotation = Rotation::new(dims, 9);
            let mut rng = SplitMix(dims as u64 + 1);
            let x: Vec<f32> = (0..dims)
                .map(|_| (rng.next() % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            let mut back = Vec::new();
            rotation.invert_into(&rotation.apply(&x), &mut back, &mut Vec::new());
            let worst = x
                .iter()
                .zip(&back)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(worst < 1e-5, "{dims}: {worst}");
            // Not the identity: rotating back is a rotation of its own.
            if dims > 1 {
                assert_ne!(rotation.apply(&x), x, "{dims}");
            }
        }
    }

    #[test]
    fn a_rotated_axis_is_spread_over_every_coordinate() {
        // Sign codes only work if no coordinate carries much of a vector's length.
        let dims = 384;
        let rotation = Rotation::new(dims, 11);
        let mut axis = vec![0.0f32; dims];
        axis[5] = 1.0;
        let rotated = rotation.apply(&axis);
        let largest = rotated.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(largest < 0.25, "largest coordinate {largest}");
    }
}
