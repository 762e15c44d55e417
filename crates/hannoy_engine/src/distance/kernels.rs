//! Distance kernels on f32 slices, IEEE half-float slices (as their `u16` bits), signed bytes
//! and u64 bit words. Each has a portable version and, on x86_64, an AVX2+FMA version (with F16C
//! for half floats) picked once at run time; both are checked against an f64 reference in the
//! tests, so the fast path can never silently drift from the meaning of the metric.

use std::sync::OnceLock;

/// The set of kernels this CPU runs.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    pub dot: fn(&[f32], &[f32]) -> f32,
    pub l2_squared: fn(&[f32], &[f32]) -> f32,
    pub l1: fn(&[f32], &[f32]) -> f32,
    pub dot_halves: fn(&[u16], &[u16]) -> f32,
    pub l2_squared_halves: fn(&[u16], &[u16]) -> f32,
    pub l1_halves: fn(&[u16], &[u16]) -> f32,
    /// `[a·b, a·a, b·b]` in one pass: the cosine of vectors stored as they came.
    pub cosine_parts_halves: fn(&[u16], &[u16]) -> [f32; 3],
    pub hamming: fn(&[u64], &[u64]) -> u32,
    /// Set bits of `a & b`: RaBitQ's inner products over bit planes.
    /// Σ over code planes k and query planes j of popcount(code_k & query_j) << (k + j): the
    /// inner product of a code's levels with a query's, both as bit planes of `words` words
    /// (the code's as native-endian bytes, read unaligned from wherever it is stored).
    pub plane_products: fn(&[u8], &[u64], usize) -> u64,
    /// The integer inner product of two vectors of signed bytes (`distance::bytes`).
    pub dot_bytes: fn(&[i8], &[i8]) -> i32,
    /// The cosine of a unit vector with its point on a RaBitQ grid of `top + 1` levels over
    /// [-half, half] (`codes::fitted_half_width` tries about 24 half-widths per code).
    pub grid_fit: fn(&[f32], f32, f32) -> f32,
    pub name: &'static str,
}

/// The loop of `plane_products`, inlined into each kernel so that each compiles it with its own
/// target features.
#[inline(always)]
fn plane_products_with(code: &[u8], query: &[u64], words: usize) -> u64 {
    let code_planes = code.len() / (8 * words.max(1));
    let query_planes = query.len() / words.max(1);
    let mut total = 0u64;
    for k in 0..code_planes {
        for w in 0..words {
            let at = (k * words + w) * 8;
            let c = u64::from_ne_bytes(code[at..at + 8].try_into().expect("8 bytes"));
            for j in 0..query_planes {
                total += u64::from((c & query[j * words + w]).count_ones()) << (k + j);
            }
        }
    }
    total
}

/// The loop of `grid_fit`: the point's coordinate is proportional to 2·level − top. Summed in
/// eight lanes, which stay in vector registers at any width; the same sums in the same order
/// whatever the caller's features, so every kernel codes a vector alike.
#[inline(always)]
fn grid_fit_with(unit: &[f32], half: f32, top: f32) -> f32 {
    use crate::codes::grid_level;
    let inverse = 1.0 / half;
    let (mut dot, mut square) = ([0.0f32; 8], [0.0f32; 8]);
    let chunks = unit.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for lane in 0..8 {
            let x = chunk[lane];
            let q = 2.0 * grid_level(x, inverse, top) - top;
            dot[lane] += q * x;
            square[lane] += q * q;
        }
    }
    for (lane, &x) in rest.iter().enumerate() {
        let q = 2.0 * grid_level(x, inverse, top) - top;
        dot[lane] += q * x;
        square[lane] += q * q;
    }
    let (dot, square) = (dot.iter().sum::<f32>(), square.iter().sum::<f32>());
    if square > 0.0 {
        dot / square.sqrt()
    } else {
        f32::NEG_INFINITY
    }
}

/// The loop of `dot_bytes`: sixteen-bit products summed in pairs, which compilers turn into
/// `pmaddwd` at whatever width the caller's features allow. No overflow: a product is at most
/// 127², and 16,000 of them stay below 2^31.
#[inline(always)]
fn dot_bytes_with(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(i16::from(x) * i16::from(y)))
        .sum()
}

pub(crate) fn kernels() -> &'static Kernels {
    static CHOSEN: OnceLock<Kernels> = OnceLock::new();
    CHOSEN.get_or_init(detect)
}

pub(crate) const PORTABLE: Kernels = Kernels {
    dot: portable::dot,
    l2_squared: portable::l2_squared,
    l1: portable::l1,
    dot_halves: portable::dot_halves,
    l2_squared_halves: portable::l2_squared_halves,
    l1_halves: portable::l1_halves,
    cosine_parts_halves: portable::cosine_parts_halves,
    hamming: portable::hamming,
    plane_products: portable::plane_products,
    dot_bytes: portable::dot_bytes,
    grid_fit: portable::grid_fit,
    name: "portable",
};

fn detect() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            let popcnt = std::is_x86_feature_detected!("popcnt");
            let f16c = std::is_x86_feature_detected!("f16c");
            return Kernels {
                dot: x86::dot,
                l2_squared: x86::l2_squared,
                l1: x86::l1,
                hamming: if popcnt {
                    x86::hamming
                } else {
                    portable::hamming
                },
                plane_products: if popcnt {
                    x86::plane_products
                } else {
                    portable::plane_products
                },
                dot_bytes: x86::dot_bytes,
                grid_fit: x86::grid_fit,
                ..if f16c {
                    Kernels {
                        dot_halves: x86::dot_halves,
                        l2_squared_halves: x86::l2_squared_halves,
                        l1_halves: x86::l1_halves,
                        cosine_parts_halves: x86::cosine_parts_halves,
                        name: "avx2+fma+f16c",
                        ..PORTABLE
                    }
                } else {
                    Kernels {
                        name: "avx2+fma",
                        ..PORTABLE
                    }
                }
            };
        }
    }
    PORTABLE
}

/// Eight independent accumulators let the compiler vectorise with SSE2 and hide FP latency.
mod portable {
    const LANES: usize = 8;

    /// Sums `f` over the element pairs, each element widened to f32 by `widen`.
    #[inline]
    fn fold<T: Copy>(
        a: &[T],
        b: &[T],
        widen: impl Fn(T) -> f32,
        f: impl Fn(f32, f32) -> f32,
    ) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0.0f32; LANES];
        let mut ca = a.chunks_exact(LANES);
        let mut cb = b.chunks_exact(LANES);
        for (x, y) in (&mut ca).zip(&mut cb) {
            for i in 0..LANES {
                acc[i] += f(widen(x[i]), widen(y[i]));
            }
        }
        let mut tail = 0.0;
        for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
            tail += f(widen(*x), widen(*y));
        }
        acc.iter().sum::<f32>() + tail
    }

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        fold(a, b, |x| x, |x, y| x * y)
    }

    pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        fold(a, b, |x| x, |x, y| (x - y) * (x - y))
    }

    pub fn l1(a: &[f32], b: &[f32]) -> f32 {
        fold(a, b, |x| x, |x, y| (x - y).abs())
    }

    pub fn hamming(a: &[u64], b: &[u64]) -> u32 {
        a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
    }

    pub fn plane_products(code: &[u8], query: &[u64], words: usize) -> u64 {
        super::plane_products_with(code, query, words)
    }

    pub fn dot_bytes(a: &[i8], b: &[i8]) -> i32 {
        super::dot_bytes_with(a, b)
    }

    pub fn grid_fit(unit: &[f32], half: f32, top: f32) -> f32 {
        super::grid_fit_with(unit, half, top)
    }

    #[inline]
    fn half(bits: u16) -> f32 {
        half::f16::from_bits(bits).to_f32()
    }

    pub fn dot_halves(a: &[u16], b: &[u16]) -> f32 {
        fold(a, b, half, |x, y| x * y)
    }

    pub fn l2_squared_halves(a: &[u16], b: &[u16]) -> f32 {
        fold(a, b, half, |x, y| (x - y) * (x - y))
    }

    pub fn l1_halves(a: &[u16], b: &[u16]) -> f32 {
        fold(a, b, half, |x, y| (x - y).abs())
    }

    pub fn cosine_parts_halves(a: &[u16], b: &[u16]) -> [f32; 3] {
        [dot_halves(a, b), dot_halves(a, a), dot_halves(b, b)]
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    // SAFETY (all functions below): `kernels()` only hands these out after run-time detection
    // confirmed AVX2, FMA (and POPCNT for `hamming`, F16C for the half-float ones); loads are
    // unaligned and bounded by `n`.

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    const DOT: u8 = 0;
    const L2: u8 = 1;
    const L1: u8 = 2;

    /// Defines `$name`, one pass over two slices of `$element` with four 8-lane accumulators;
    /// `OP` picks what is summed: the product (`DOT`), the squared difference (`L2`) or the
    /// absolute difference (`L1`). `$load` reads eight elements at an offset as f32 lanes and
    /// `$widen` one element, for the tail.
    macro_rules! fold_kernel {
        ($name:ident, $element:ty, $features:literal, $load:expr, $widen:expr) => {
            #[target_feature(enable = $features)]
            unsafe fn $name<const OP: u8>(a: &[$element], b: &[$element]) -> f32 {
                let n = a.len().min(b.len());
                let (pa, pb) = (a.as_ptr(), b.as_ptr());
                // Clearing the sign bit is the absolute value.
                let sign_off = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
                macro_rules! step {
                    ($acc:expr, $i:expr) => {{
                        let (x, y) = ($load(pa, $i), $load(pb, $i));
                        match OP {
                            DOT => _mm256_fmadd_ps(x, y, $acc),
                            L2 => {
                                let d = _mm256_sub_ps(x, y);
                                _mm256_fmadd_ps(d, d, $acc)
                            }
                            _ => _mm256_add_ps($acc, _mm256_and_ps(_mm256_sub_ps(x, y), sign_off)),
                        }
                    }};
                }
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut i = 0;
                while i + 32 <= n {
                    acc[0] = step!(acc[0], i);
                    acc[1] = step!(acc[1], i + 8);
                    acc[2] = step!(acc[2], i + 16);
                    acc[3] = step!(acc[3], i + 24);
                    i += 32;
                }
                while i + 8 <= n {
                    acc[0] = step!(acc[0], i);
                    i += 8;
                }
                let mut sum = hsum(_mm256_add_ps(
                    _mm256_add_ps(acc[0], acc[1]),
                    _mm256_add_ps(acc[2], acc[3]),
                ));
                while i < n {
                    let (x, y) = ($widen(*pa.add(i)), $widen(*pb.add(i)));
                    sum += match OP {
                        DOT => x * y,
                        L2 => (x - y) * (x - y),
                        _ => (x - y).abs(),
                    };
                    i += 1;
                }
                sum
            }
        };
    }

    fold_kernel!(
        fold,
        f32,
        "avx2,fma",
        |p: *const f32, i| _mm256_loadu_ps(p.add(i)),
        |x: f32| x
    );
    fold_kernel!(fold_halves, u16, "avx2,fma,f16c", load_halves, |x: u16| {
        half::f16::from_bits(x).to_f32()
    });

    /// Eight half floats from `p + i`, widened to f32.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load_halves(p: *const u16, i: usize) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.add(i).cast::<__m128i>()))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn cosine_parts_f16c(a: &[u16], b: &[u16]) -> [f32; 3] {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        // Two sets of the three sums keep two FMA chains per sum in flight.
        let mut acc = [_mm256_setzero_ps(); 6];
        let mut i = 0;
        while i + 16 <= n {
            for half_step in 0..2 {
                let (x, y) = (
                    load_halves(pa, i + 8 * half_step),
                    load_halves(pb, i + 8 * half_step),
                );
                let k = 3 * half_step;
                acc[k] = _mm256_fmadd_ps(x, y, acc[k]);
                acc[k + 1] = _mm256_fmadd_ps(x, x, acc[k + 1]);
                acc[k + 2] = _mm256_fmadd_ps(y, y, acc[k + 2]);
            }
            i += 16;
        }
        while i + 8 <= n {
            let (x, y) = (load_halves(pa, i), load_halves(pb, i));
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            acc[1] = _mm256_fmadd_ps(x, x, acc[1]);
            acc[2] = _mm256_fmadd_ps(y, y, acc[2]);
            i += 8;
        }
        let mut parts = [
            hsum(_mm256_add_ps(acc[0], acc[3])),
            hsum(_mm256_add_ps(acc[1], acc[4])),
            hsum(_mm256_add_ps(acc[2], acc[5])),
        ];
        while i < n {
            let (x, y) = (
                half::f16::from_bits(*pa.add(i)).to_f32(),
                half::f16::from_bits(*pb.add(i)).to_f32(),
            );
            parts[0] += x * y;
            parts[1] += x * x;
            parts[2] += y * y;
            i += 1;
        }
        parts
    }

    #[target_feature(enable = "popcnt")]
    unsafe fn hamming_popcnt(a: &[u64], b: &[u64]) -> u32 {
        let mut sum = 0u32;
        for (x, y) in a.iter().zip(b) {
            sum += _popcnt64((x ^ y) as i64) as u32;
        }
        sum
    }

    #[target_feature(enable = "avx2")]
    unsafe fn grid_fit_avx2(unit: &[f32], half: f32, top: f32) -> f32 {
        // The portable loop, eight lanes to one register; no FMA, so the same roundings.
        super::grid_fit_with(unit, half, top)
    }

    #[target_feature(enable = "popcnt")]
    unsafe fn plane_products_popcnt(code: &[u8], query: &[u64], words: usize) -> u64 {
        // The same loop as the portable one, compiled with POPCNT for `count_ones`.
        super::plane_products_with(code, query, words)
    }

    /// Sixteen bytes from `p + i`, widened to sixteen-bit lanes.
    #[target_feature(enable = "avx2")]
    unsafe fn load_bytes(p: *const i8, i: usize) -> __m256i {
        _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(i).cast::<__m128i>()))
    }

    #[target_feature(enable = "avx2")]
    unsafe fn dot_bytes_avx2(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_si256(); 2];
        let mut i = 0;
        while i + 32 <= n {
            for (k, lane) in acc.iter_mut().enumerate() {
                let at = i + 16 * k;
                let products = _mm256_madd_epi16(load_bytes(pa, at), load_bytes(pb, at));
                *lane = _mm256_add_epi32(*lane, products);
            }
            i += 32;
        }
        if i + 16 <= n {
            let products = _mm256_madd_epi16(load_bytes(pa, i), load_bytes(pb, i));
            acc[0] = _mm256_add_epi32(acc[0], products);
            i += 16;
        }
        let sum = _mm256_add_epi32(acc[0], acc[1]);
        let sum = _mm_add_epi32(
            _mm256_castsi256_si128(sum),
            _mm256_extracti128_si256(sum, 1),
        );
        let sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0b01_00_11_10));
        let sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0b10_11_00_01));
        _mm_cvtsi128_si32(sum) + super::dot_bytes_with(&a[i..n], &b[i..n])
    }

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: see the module comment.
        unsafe { fold::<DOT>(a, b) }
    }
    pub fn dot_bytes(a: &[i8], b: &[i8]) -> i32 {
        // SAFETY: see the module comment.
        unsafe { dot_bytes_avx2(a, b) }
    }
    pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: see the module comment.
        unsafe { fold::<L2>(a, b) }
    }
    pub fn l1(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: see the module comment.
        unsafe { fold::<L1>(a, b) }
    }
    pub fn hamming(a: &[u64], b: &[u64]) -> u32 {
        // SAFETY: see the module comment.
        unsafe { hamming_popcnt(a, b) }
    }
    pub fn plane_products(code: &[u8], query: &[u64], words: usize) -> u64 {
        // SAFETY: see the module comment (`kernels()` picks this only with POPCNT).
        unsafe { plane_products_popcnt(code, query, words) }
    }
    pub fn grid_fit(unit: &[f32], half: f32, top: f32) -> f32 {
        // SAFETY: see the module comment.
        unsafe { grid_fit_avx2(unit, half, top) }
    }
    pub fn dot_halves(a: &[u16], b: &[u16]) -> f32 {
        // SAFETY: see the module comment; `kernels()` checked F16C too.
        unsafe { fold_halves::<DOT>(a, b) }
    }
    pub fn l2_squared_halves(a: &[u16], b: &[u16]) -> f32 {
        // SAFETY: as `dot_halves`.
        unsafe { fold_halves::<L2>(a, b) }
    }
    pub fn l1_halves(a: &[u16], b: &[u16]) -> f32 {
        // SAFETY: as `dot_halves`.
        unsafe { fold_halves::<L1>(a, b) }
    }
    pub fn cosine_parts_halves(a: &[u16], b: &[u16]) -> [f32; 3] {
        // SAFETY: as `dot_halves`.
        unsafe { cosine_parts_f16c(a, b) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn reference(a: &[f32], b: &[f32]) -> (f64, f64, f64) {
        let mut dot = 0.0f64;
        let mut l2 = 0.0f64;
        let mut l1 = 0.0f64;
        for (x, y) in a.iter().zip(b) {
            let (x, y) = (*x as f64, *y as f64);
            dot += x * y;
            l2 += (x - y) * (x - y);
            l1 += (x - y).abs();
        }
        (dot, l2, l1)
    }

    #[test]
    fn every_grid_fit_is_the_portable_one_to_the_bit_and_the_cosine_it_stands_for() {
        let mut seed = 11;
        for dims in [1usize, 7, 8, 9, 64, 100, 384, 768, 1001] {
            let raw: Vec<f32> = (0..dims).map(|_| lcg(&mut seed)).collect();
            let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
            let unit: Vec<f32> = raw.iter().map(|x| x / norm).collect();
            let largest = unit.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            for top in [1.0f32, 3.0, 15.0, 255.0] {
                for share in [0.3f32, 0.6, 1.0] {
                    let half = largest * share;
                    let portable = (PORTABLE.grid_fit)(&unit, half, top);
                    let chosen = (kernels().grid_fit)(&unit, half, top);
                    // Codes made on one machine are read on another: the same bits.
                    assert_eq!(portable.to_bits(), chosen.to_bits(), "{dims} {top} {share}");
                    let point: Vec<f64> = unit
                        .iter()
                        .map(|&x| {
                            // The level as grid_level takes it, rounded the library's way.
                            let level = ((x * (1.0 / half) + 1.0) * (0.5 * top))
                                .clamp(0.0, top)
                                .round_ties_even();
                            2.0 * level as f64 - top as f64
                        })
                        .collect();
                    let length = point.iter().map(|p| p * p).sum::<f64>().sqrt();
                    let cosine = point
                        .iter()
                        .zip(&unit)
                        .map(|(p, &x)| p * x as f64)
                        .sum::<f64>()
                        / length;
                    assert!(
                        (portable as f64 - cosine).abs() < 1e-4,
                        "{dims} {top} {share}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_kernel_matches_the_f64_reference() {
        let mut seed = 7;
        for kernels in [PORTABLE, *kernels()] {
            for dims in [
                1usize, 3, 7, 8, 15, 16, 31, 32, 33, 100, 128, 384, 768, 1001,
            ] {
                let a: Vec<f32> = (0..dims).map(|_| lcg(&mut seed)).collect();
                let b: Vec<f32> = (0..dims).map(|_| lcg(&mut seed)).collect();
                let (dot, l2, l1) = reference(&a, &b);
                let tol = 1e-4 * (dims as f64).sqrt().max(1.0);
                assert!(
                    ((kernels.dot)(&a, &b) as f64 - dot).abs() < tol,
                    "{} dot {dims}",
                    kernels.name
                );
                assert!(
                    ((kernels.l2_squared)(&a, &b) as f64 - l2).abs() < tol * 4.0,
                    "{} l2 {dims}",
                    kernels.name
                );
                assert!(
                    ((kernels.l1)(&a, &b) as f64 - l1).abs() < tol * 4.0,
                    "{} l1 {dims}",
                    kernels.name
                );
            }
            for dims in [1usize, 7, 8, 15, 16, 17, 31, 32, 33, 100, 384, 1001, 3072] {
                // Half floats as a halfvec column holds them; the reference reads the same
                // values widened to f64.
                let to_half = |x: f32| half::f16::from_f32(x).to_bits();
                let a: Vec<u16> = (0..dims).map(|_| to_half(lcg(&mut seed))).collect();
                let b: Vec<u16> = (0..dims).map(|_| to_half(lcg(&mut seed))).collect();
                let widen = |v: &[u16]| -> Vec<f32> {
                    v.iter()
                        .map(|&h| half::f16::from_bits(h).to_f32())
                        .collect()
                };
                let (wa, wb) = (widen(&a), widen(&b));
                let (dot, l2, l1) = reference(&wa, &wb);
                let (aa, _, _) = reference(&wa, &wa);
                let (bb, _, _) = reference(&wb, &wb);
                let tol = 1e-4 * (dims as f64).sqrt().max(1.0);
                let name = kernels.name;
                assert!(
                    ((kernels.dot_halves)(&a, &b) as f64 - dot).abs() < tol,
                    "{name} dot {dims}"
                );
                assert!(
                    ((kernels.l2_squared_halves)(&a, &b) as f64 - l2).abs() < tol * 4.0,
                    "{name} l2 {dims}"
                );
                assert!(
                    ((kernels.l1_halves)(&a, &b) as f64 - l1).abs() < tol * 4.0,
                    "{name} l1 {dims}"
                );
                let [ab, a2, b2] = (kernels.cosine_parts_halves)(&a, &b);
                for (got, want) in [(ab, dot), (a2, aa), (b2, bb)] {
                    assert!(
                        (got as f64 - want).abs() < tol * 4.0,
                        "{name} cosine parts {dims}"
                    );
                }
            }
            for dims in [1usize, 15, 16, 17, 31, 32, 33, 48, 384, 1001, 16_000] {
                // Every value a byte vector holds, the extremes included: the integer sum is
                // exact, so the kernels must agree with it to the unit.
                let a: Vec<i8> = (0..dims)
                    .map(|_| (lcg(&mut seed) * 127.0).round() as i8)
                    .collect();
                let mut b: Vec<i8> = (0..dims)
                    .map(|_| (lcg(&mut seed) * 127.0).round() as i8)
                    .collect();
                let expected: i64 = a
                    .iter()
                    .zip(&b)
                    .map(|(&x, &y)| i64::from(x) * i64::from(y))
                    .sum();
                assert_eq!(
                    i64::from((kernels.dot_bytes)(&a, &b)),
                    expected,
                    "{} bytes {dims}",
                    kernels.name
                );
                b.iter_mut()
                    .zip(&a)
                    .for_each(|(y, &x)| *y = if x < 0 { -127 } else { 127 });
                let largest: i64 = a.iter().map(|&x| i64::from(x).abs() * 127).sum();
                assert_eq!(
                    i64::from((kernels.dot_bytes)(&a, &b)),
                    largest,
                    "{} bytes {dims}",
                    kernels.name
                );
            }
            for words in [1usize, 2, 5, 12] {
                let a: Vec<u64> = (0..words)
                    .map(|i| 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1))
                    .collect();
                let b: Vec<u64> = (0..words)
                    .map(|i| 0xC2B2_AE3D_27D4_EB4Fu64.wrapping_mul(i as u64 + 3))
                    .collect();
                let expected: u32 = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (0..64).filter(|bit| ((x ^ y) >> bit) & 1 == 1).count() as u32)
                    .sum();
                assert_eq!(
                    (kernels.hamming)(&a, &b),
                    expected,
                    "{} hamming",
                    kernels.name
                );
                // Two code planes (a and b as bytes) against a one-plane query (b).
                let code: Vec<u8> = a.iter().chain(&b).flat_map(|w| w.to_ne_bytes()).collect();
                let bits =
                    |x: u64, y: u64| (0..64).filter(|bit| ((x & y) >> bit) & 1 == 1).count() as u64;
                let expected: u64 = (0..words)
                    .map(|w| bits(a[w], b[w]) + (bits(b[w], b[w]) << 1))
                    .sum();
                assert_eq!(
                    (kernels.plane_products)(&code, &b, words),
                    expected,
                    "{} plane_products",
                    kernels.name
                );
            }
        }
    }
}
