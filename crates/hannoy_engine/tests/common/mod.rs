//! Seeded data sets and an exact (f64) reference for the engine's tests.
#![allow(dead_code)]

use hannoy_engine::{
    never_cancel, Index, IndexOptions, ItemId, Metric, Reader, SearchParams, VectorRef,
};
use roaring::RoaringBitmap;

/// Every key of `index` with its stored vector.
pub fn contents(index: &Index) -> std::collections::BTreeMap<u64, Vec<f32>> {
    let reader = index.read().unwrap();
    let keys: Vec<(u32, u64)> = reader.keys().unwrap().map(Result::unwrap).collect();
    keys.into_iter()
        .map(|(id, key)| (key, reader.vector(id).unwrap().unwrap()))
        .collect()
}

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x2545_F491_4F6C_DD1D)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt() as f32;
    v.iter_mut().for_each(|x| *x /= n);
}

/// A harder mixture than a few tidy blobs: many small clusters of different spreads, 5% near
/// duplicates of other points, normalised. Queries are generated separately, partly off-cluster.
pub fn clustered(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let clusters = (n / 50).max(8);
    let centers: Vec<Vec<f32>> = (0..clusters)
        .map(|_| {
            let mut c: Vec<f32> = (0..dims).map(|_| rng.normal()).collect();
            normalize(&mut c);
            c
        })
        .collect();
    let spreads: Vec<f32> = (0..clusters)
        .map(|_| 0.3 + 0.9 * rng.unit() as f32)
        .collect();
    let mut data: Vec<Vec<f32>> = Vec::with_capacity(n);
    for i in 0..n {
        if i > 10 && rng.below(20) == 0 {
            let base = data[rng.below(i)].clone();
            let mut v: Vec<f32> = base.iter().map(|x| x + 0.001 * rng.normal()).collect();
            normalize(&mut v);
            data.push(v);
            continue;
        }
        let c = rng.below(clusters);
        let scale = spreads[c] / (dims as f32).sqrt();
        let mut v: Vec<f32> = centers[c]
            .iter()
            .map(|x| x + scale * rng.normal())
            .collect();
        normalize(&mut v);
        data.push(v);
    }
    data
}

/// Embedding-like data: topics whose members spread along a few directions of their own (a
/// low-rank offset with decaying variance) plus a little isotropic noise, normalised. Real text
/// embeddings have this low intrinsic dimension; isotropic blobs (`clustered`) are much harder
/// for any graph index and serve as the hard case.
pub fn embedding_like(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed ^ 0xE3B);
    let topics = (n / 200).max(4);
    let rank = 24.min(dims);
    let unit = |rng: &mut Rng| {
        let mut v: Vec<f32> = (0..dims).map(|_| rng.normal()).collect();
        normalize(&mut v);
        v
    };
    let centers: Vec<Vec<f32>> = (0..topics).map(|_| unit(&mut rng)).collect();
    let bases: Vec<Vec<Vec<f32>>> = (0..topics)
        .map(|_| (0..rank).map(|_| unit(&mut rng)).collect())
        .collect();
    (0..n)
        .map(|_| {
            let t = rng.below(topics);
            let mut v = centers[t].clone();
            for (i, b) in bases[t].iter().enumerate() {
                let w = 0.35 * rng.normal() / ((i + 1) as f32).sqrt();
                v.iter_mut().zip(b).for_each(|(x, y)| *x += w * y);
            }
            let noise = 0.05 / (dims as f32).sqrt();
            v.iter_mut().for_each(|x| *x += noise * rng.normal());
            normalize(&mut v);
            v
        })
        .collect()
}

/// Rows drawn from a model of text embeddings calibrated on the WordNet/MiniLM set, so that a
/// graph index finds them as hard as the real rows (the fit and its figures: docs/benchmarks.md,
/// "Synthetic data as hard as the real set"). A Gaussian whose variances fall off over the
/// coordinates like `i^-0.5 · exp(-(i / 0.65·d)²)`, as the real set's principal components do,
/// offset by a direction all rows share (real embeddings have a common mean direction), around
/// 1,000 topics whose centres are drawn from the same Gaussian at half its variance, times
/// a log-normal factor per topic so that some topics are tight and others diffuse; normalised.
/// The model depends on `dims` only and `seed` picks the draws, so rows of one seed and queries
/// of another are held-out samples of one distribution, as the real set's queries are.
pub fn text_like(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    use rayon::prelude::*;
    const TOPICS: usize = 1000;
    const TOPIC_VARIANCE: f64 = 0.5;
    const TOPIC_SPREAD: f64 = 0.7;
    const SHARED_LENGTH: f64 = 0.3;
    let mut model = Rng::new(0x7E47 ^ dims as u64);
    let cut = 0.65 * dims as f64;
    let mut variance: Vec<f64> = (1..=dims)
        .map(|i| (i as f64).powf(-0.5) * (-(i as f64 / cut).powi(2)).exp())
        .collect();
    let total: f64 = variance.iter().sum();
    variance.iter_mut().for_each(|v| *v /= total);
    let sd: Vec<f32> = variance.iter().map(|v| v.sqrt() as f32).collect();
    let mut shared: Vec<f32> = (0..dims).map(|_| model.normal()).collect();
    normalize(&mut shared);
    shared.iter_mut().for_each(|x| *x *= SHARED_LENGTH as f32);
    let centres: Vec<Vec<f32>> = (0..TOPICS)
        .map(|_| {
            let scale = TOPIC_VARIANCE.sqrt() * (model.normal() as f64 * TOPIC_SPREAD / 2.0).exp();
            (0..dims)
                .map(|j| shared[j] + scale as f32 * sd[j] * model.normal())
                .collect()
        })
        .collect();
    (0..n)
        .into_par_iter()
        .map(|row| {
            let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ row as u64);
            let centre = &centres[rng.below(TOPICS)];
            let mut v: Vec<f32> = (0..dims)
                .map(|j| centre[j] + sd[j] * rng.normal())
                .collect();
            normalize(&mut v);
            v
        })
        .collect()
}

/// Queries: half near data points (with more noise than the data), half between clusters.
pub fn queries(data: &[Vec<f32>], count: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed ^ 0xABCD);
    let dims = data[0].len();
    (0..count)
        .map(|i| {
            let a = &data[rng.below(data.len())];
            let mut q: Vec<f32> = if i % 2 == 0 {
                a.iter()
                    .map(|x| x + 0.5 / (dims as f32).sqrt() * rng.normal())
                    .collect()
            } else {
                let b = &data[rng.below(data.len())];
                a.iter()
                    .zip(b)
                    .map(|(x, y)| 0.5 * (x + y) + 0.2 / (dims as f32).sqrt() * rng.normal())
                    .collect()
            };
            normalize(&mut q);
            q
        })
        .collect()
}

/// Un-normalised copies (scaled by a per-vector factor) so Euclidean, inner product and L1 see
/// vectors of different lengths.
pub fn scaled(data: &[Vec<f32>], seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    data.iter()
        .map(|v| {
            let s = 0.5 + rng.unit() as f32;
            v.iter().map(|x| x * s).collect()
        })
        .collect()
}

/// Bit vectors: each cluster has a random centre, members flip 10% of its bits.
pub fn bit_clusters(n: usize, bits: usize, seed: u64) -> Vec<Vec<u64>> {
    let mut rng = Rng::new(seed);
    let words = bits.div_ceil(64);
    let mask_last = if bits.is_multiple_of(64) {
        u64::MAX
    } else {
        (1u64 << (bits % 64)) - 1
    };
    let clusters = (n / 50).max(8);
    let centers: Vec<Vec<u64>> = (0..clusters)
        .map(|_| (0..words).map(|_| rng.next_u64()).collect())
        .collect();
    (0..n)
        .map(|_| {
            let mut v = centers[rng.below(clusters)].clone();
            for _ in 0..bits / 10 {
                let b = rng.below(bits);
                v[b / 64] ^= 1 << (b % 64);
            }
            v[words - 1] &= mask_last;
            v
        })
        .collect()
}

pub fn reference_distance(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    let pairs = a.iter().zip(b).map(|(x, y)| (*x as f64, *y as f64));
    match metric {
        Metric::Euclidean => pairs.map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt(),
        Metric::Manhattan => pairs.map(|(x, y)| (x - y).abs()).sum(),
        Metric::InnerProduct => -pairs.map(|(x, y)| x * y).sum::<f64>(),
        Metric::Cosine => {
            let (mut dot, mut na, mut nb) = (0.0, 0.0, 0.0);
            for (x, y) in pairs {
                dot += x * y;
                na += x * x;
                nb += y * y;
            }
            1.0 - dot / (na.sqrt() * nb.sqrt())
        }
        Metric::Hamming => unreachable!("bit vectors use hamming_distance"),
        // Exact for the half-float metrics when the vectors are halves already (`as_halves`).
        half => reference_distance(half.in_f32(), a, b),
    }
}

/// Every element rounded to the nearest half float, as a `halfvec` column holds vectors.
pub fn as_halves(data: &[Vec<f32>]) -> Vec<Vec<f32>> {
    data.iter()
        .map(|v| v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect())
        .collect()
}

pub fn hamming_distance(a: &[u64], b: &[u64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x ^ y).count_ones() as f64)
        .sum()
}

/// Distances from a query to every candidate, sorted ascending (id breaks ties).
pub fn exact(distances: impl Iterator<Item = (ItemId, f64)>, k: usize) -> Vec<(ItemId, f64)> {
    let mut all: Vec<(ItemId, f64)> = distances.collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Recall that treats ties fairly: a found item counts if it is no farther than the true k-th.
pub fn recall(
    found: &[ItemId],
    truth: &[(ItemId, f64)],
    distance_of: impl Fn(ItemId) -> f64,
) -> f64 {
    if truth.is_empty() {
        return if found.is_empty() { 1.0 } else { 0.0 };
    }
    let kth = truth.last().unwrap().1;
    let hits = found
        .iter()
        .take(truth.len())
        .filter(|id| distance_of(**id) <= kth + 1e-5 * kth.abs().max(1.0))
        .count();
    hits as f64 / truth.len() as f64
}

pub fn create(dir: &std::path::Path, metric: Metric, dims: usize) -> Index {
    Index::create(dir, &IndexOptions::new(metric, dims)).unwrap()
}

pub fn insert_floats(index: &Index, data: &[Vec<f32>]) -> Vec<ItemId> {
    let batch = index
        .prepare(data.iter().map(|v| VectorRef::Floats(v)))
        .unwrap();
    index.write(|w| w.insert(&batch, &never_cancel)).unwrap()
}

pub fn bitmap(ids: impl IntoIterator<Item = ItemId>) -> RoaringBitmap {
    ids.into_iter().collect()
}

/// Mean recall@k of `reader.search` over `queries` against brute force over `allowed`, and the
/// fewest results any query returned. Fails if a result lies outside `allowed`.
pub fn mean_recall(
    reader: &Reader,
    metric: Metric,
    data: &[Vec<f32>],
    queries: &[Vec<f32>],
    k: usize,
    params: &SearchParams<'_>,
    allowed: &RoaringBitmap,
) -> (f64, usize) {
    let mut total = 0.0;
    let mut fewest = usize::MAX;
    for q in queries {
        let found: Vec<u32> = reader
            .search(VectorRef::Floats(q), k, params)
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect();
        assert!(
            found.iter().all(|id| allowed.contains(*id)),
            "a search returned an item that is not allowed"
        );
        fewest = fewest.min(found.len());
        let truth = exact(
            allowed
                .iter()
                .map(|id| (id, reference_distance(metric, q, &data[id as usize]))),
            k,
        );
        total += recall(&found, &truth, |id| {
            reference_distance(metric, q, &data[id as usize])
        });
    }
    (total / queries.len() as f64, fewest)
}

/// Opens an index folder's LMDB environment directly, for tests that rewrite it behind the
/// engine's back.
pub fn raw_env(path: &std::path::Path) -> heed::Env<heed::WithoutTls> {
    // SAFETY: callers have no Index open on this folder while they use the environment.
    unsafe {
        heed::EnvOpenOptions::new()
            .read_txn_without_tls()
            .max_dbs(16)
            .open(path)
            .unwrap()
    }
}

/// Rewrites the metadata record of the index folder at `path` with `patch`, behind the engine's
/// back (no Index may be open on it).
pub fn rewrite_meta(path: &std::path::Path, patch: impl FnOnce(&mut Vec<u8>)) {
    let env = raw_env(path);
    let mut wtxn = env.write_txn().unwrap();
    let db: heed::Database<heed::types::Str, heed::types::Bytes> = env
        .open_database(&wtxn, Some("hannoy.meta"))
        .unwrap()
        .unwrap();
    let mut bytes = db.get(&wtxn, "meta").unwrap().unwrap().to_vec();
    patch(&mut bytes);
    db.put(&mut wtxn, "meta", &bytes).unwrap();
    wtxn.commit().unwrap();
}

/// An element type of the `.npy` files the benches read: little-endian float32 or int32.
pub trait NpyElement: bytemuck::Pod {
    const DESCR: &'static str;
}

impl NpyElement for f32 {
    const DESCR: &'static str = "'<f4'";
}

impl NpyElement for i32 {
    const DESCR: &'static str = "'<i4'";
}

/// The first `limit` rows of a 2-D little-endian `.npy` file of `columns` columns.
pub fn read_npy<T: NpyElement>(
    path: &std::path::Path,
    limit: usize,
    columns: usize,
) -> Vec<Vec<T>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x93NUMPY"),
        "{}: not an .npy file",
        path.display()
    );
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(
        header.contains(T::DESCR)
            && header.contains("'fortran_order': False")
            && header.contains(&format!(", {columns})")),
        "{}: want {} rows of {columns}, the header says {header}",
        path.display(),
        T::DESCR
    );
    bytes[10 + header_len..]
        .chunks_exact(columns * std::mem::size_of::<T>())
        .take(limit)
        .map(bytemuck::pod_collect_to_vec)
        .collect()
}

/// Writes `rows` (all of one length) as a 2-D little-endian `.npy` file that [`read_npy`] and
/// numpy read back.
pub fn write_npy<T: NpyElement>(path: &std::path::Path, rows: &[Vec<T>]) {
    let columns = rows.first().map_or(0, Vec::len);
    assert!(
        rows.iter().all(|r| r.len() == columns),
        "rows of one length"
    );
    let mut header = format!(
        "{{'descr': {}, 'fortran_order': False, 'shape': ({}, {columns}), }}",
        T::DESCR,
        rows.len()
    );
    // The header, with its 10-byte preamble and closing newline, fills a multiple of 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.extend(std::iter::repeat_n(
        ' ',
        unpadded.next_multiple_of(64) - unpadded,
    ));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for row in rows {
        bytes.extend_from_slice(bytemuck::cast_slice(row));
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The page cache's view of a file, through the kernel's own calls.
pub mod page_cache {
    use std::os::fd::AsRawFd;
    use std::path::Path;

    /// Drops the file's clean pages from the page cache. Pages some process maps stay: the
    /// caller closes the index first.
    pub fn evict(path: &Path) {
        let file = std::fs::File::open(path).unwrap();
        // SAFETY: a valid descriptor; the advice only drops cached copies of the file.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "posix_fadvise");
    }

    /// Reads the whole file, so that its pages are in the page cache.
    pub fn read_all(path: &Path) {
        // Streamed, not collected: the file can be larger than the memory it is meant to fill.
        let mut file = std::fs::File::open(path).unwrap();
        std::io::copy(&mut file, &mut std::io::sink()).unwrap();
    }

    /// How many of the file's pages are in the page cache.
    pub fn resident(path: &Path) -> usize {
        let file = std::fs::File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        if len == 0 {
            return 0;
        }
        let page = 4096;
        // SAFETY: a read-only shared mapping of a file we hold open, unmapped below; mincore
        // writes one byte per page into a vector of exactly that many bytes.
        unsafe {
            let address = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(address, libc::MAP_FAILED, "mmap");
            let mut pages = vec![0u8; len.div_ceil(page)];
            let rc = libc::mincore(address, len, pages.as_mut_ptr());
            libc::munmap(address, len);
            assert_eq!(rc, 0, "mincore");
            pages.iter().filter(|&&p| p & 1 == 1).count()
        }
    }
}

/// What PostgreSQL's executor does with an index's lower bounds (`IndexNextWithReorder`): each
/// row's exact distance is computed as it is fetched and must not be below the bound the index
/// gave (the query fails otherwise); a fetched row goes out once no row still to come can be
/// nearer, that is once its exact distance is at most the last bound fetched. Returns the first
/// `k` rows out and how many were fetched.
pub fn reorder_as_postgres(
    stream: &mut hannoy_engine::NeighborStream<'_>,
    exact_of: impl Fn(ItemId) -> f64,
    k: usize,
) -> (Vec<ItemId>, usize) {
    let mut queue: Vec<(f64, ItemId)> = Vec::new();
    let (mut out, mut fetched) = (Vec::new(), 0);
    let mut batch = Vec::new().into_iter();
    let mut last_bound = f64::NEG_INFINITY;
    let mut drained = false;
    while out.len() < k {
        queue.sort_by(|a, b| b.0.total_cmp(&a.0));
        if let Some(&(nearest, id)) = queue.last() {
            if drained || nearest <= last_bound {
                queue.pop();
                out.push(id);
                continue;
            }
        } else if drained {
            break;
        }
        let next = match batch.next() {
            Some(n) => Some(n),
            None => {
                batch = stream.next_batch().unwrap().into_iter();
                batch.next()
            }
        };
        let Some(n): Option<hannoy_engine::Neighbor> = next else {
            drained = true;
            continue;
        };
        fetched += 1;
        let exact = exact_of(n.id);
        assert!(
            n.distance as f64 <= exact,
            "item {}: bound {} above the exact {exact}",
            n.id,
            n.distance
        );
        last_bound = n.distance as f64;
        queue.push((exact, n.id));
    }
    (out, fetched)
}

/// Mean recall@k and rows fetched over `queries` when PostgreSQL's executor reorders the lower
/// bounds of each query's stream (`reorder_as_postgres`); `exact_of` is the SQL operator's
/// distance from a query to an item's row.
pub fn reordered_recall(
    reader: &Reader,
    params: &SearchParams<'_>,
    queries: &[Vec<f32>],
    exact_of: impl Fn(&[f32], ItemId) -> f64,
    k: usize,
) -> (f64, f64) {
    let allowed = params.filter.unwrap_or(reader.items());
    let (mut recall_sum, mut fetched_sum) = (0.0, 0);
    for q in queries {
        let mut stream = reader.stream(VectorRef::Floats(q), params).unwrap();
        assert!(stream.lower_bounds());
        let (found, fetched) = reorder_as_postgres(&mut stream, |id| exact_of(q, id), k);
        let truth = exact(allowed.iter().map(|id| (id, exact_of(q, id))), k);
        recall_sum += recall(&found, &truth, |id| exact_of(q, id));
        fetched_sum += fetched;
    }
    let n = queries.len() as f64;
    (recall_sum / n, fetched_sum as f64 / n)
}
