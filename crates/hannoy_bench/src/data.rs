//! The vectors of a run: synthetic ones made here, or the user's read from `.fvecs` / `.ivecs` /
//! `.npy`; plus the columns every run adds (a category for filters, rows for the insert step).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::args::{DataSource, Metric, Settings};
use crate::{BenchError, Context, Progress};

/// Categories are drawn uniformly from 0..CATEGORY_VALUES, so `category < t` keeps
/// t / CATEGORY_VALUES of the rows: selectivities have a resolution of 0.01%.
pub const CATEGORY_VALUES: i32 = 10_000;

/// Vectors stored row after row in one allocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub dims: usize,
    pub values: Vec<f32>,
}

impl Matrix {
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.dims).unwrap_or(0)
    }

    pub fn row(&self, index: usize) -> &[f32] {
        &self.values[index * self.dims..(index + 1) * self.dims]
    }

    fn truncate(&mut self, rows: usize) {
        self.values.truncate(rows * self.dims);
    }
}

pub struct Dataset {
    pub base: Matrix,
    pub queries: Matrix,
    /// The user's ground truth (ids are positions in `base`), if given.
    pub given_truth: Option<Vec<Vec<u32>>>,
    /// One per base row, independent of the vectors.
    pub categories: Vec<i32>,
    /// Rows for the insert step (1% of the table), with their categories.
    pub new_rows: Matrix,
    pub new_categories: Vec<i32>,
}

/// splitmix64: small, fast, and the same numbers on every machine, which is all the data needs.
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        // The bias of a modulo is below 2^-40 for the bounds used here.
        self.next_u64() % bound.max(1)
    }

    /// Standard normal by Box-Muller (one of the pair; simplicity over speed).
    pub fn gaussian(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]: ln is finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

fn normalise(vector: &mut [f32]) {
    let norm = vector
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in vector.iter_mut() {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

/// A copy of `vector` moved by Gaussian noise of `relative` times its root mean square element.
fn perturbed(vector: &[f32], relative: f64, rng: &mut SplitMix64) -> Vec<f32> {
    let rms = (vector
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        / vector.len().max(1) as f64)
        .sqrt();
    let sigma = relative * if rms > 0.0 { rms } else { 1.0 };
    vector
        .iter()
        .map(|&x| (f64::from(x) + sigma * rng.gaussian()) as f32)
        .collect()
}

/// Spread of the points around their centre, relative to the centres' unit-variance elements:
/// wide enough that clusters overlap a little, as topics of real embeddings do.
const CLUSTER_SPREAD: f64 = 0.8;
/// Synthetic queries are data points moved by Gaussian noise of this much times the vector's RMS
/// element, by default: near their source row, but not copies of it. Larger values make the
/// queries harder (docs/benchmarks.md, "Synthetic data").
pub const QUERY_NOISE: f64 = 0.2;
/// Inserted rows are data points moved by this much: near their source row, not copies of it.
const NEW_ROW_NOISE: f64 = 0.2;

pub fn synthetic_base(rows: usize, dims: usize, clusters: usize, seed: u64) -> Matrix {
    let mut rng = SplitMix64::new(seed);
    let centres: Vec<f64> = (0..clusters * dims).map(|_| rng.gaussian()).collect();
    let mut values = Vec::with_capacity(rows * dims);
    for _ in 0..rows {
        let cluster = rng.below(clusters as u64) as usize;
        let start = values.len();
        values.extend(
            centres[cluster * dims..(cluster + 1) * dims]
                .iter()
                .map(|&c| (c + CLUSTER_SPREAD * rng.gaussian()) as f32),
        );
        normalise(&mut values[start..]);
    }
    Matrix { dims, values }
}

/// `count` rows of `base` picked at random, each moved by Gaussian noise of `noise` times its
/// RMS element; normalised when `normalised`.
pub fn perturbed_rows(
    base: &Matrix,
    count: usize,
    normalised: bool,
    noise: f64,
    seed: u64,
) -> Matrix {
    let mut rng = SplitMix64::new(seed);
    let mut values = Vec::with_capacity(count * base.dims);
    for _ in 0..count {
        let source = rng.below(base.len() as u64) as usize;
        let mut vector = perturbed(base.row(source), noise, &mut rng);
        if normalised {
            normalise(&mut vector);
        }
        values.extend_from_slice(&vector);
    }
    Matrix {
        dims: base.dims,
        values,
    }
}

pub fn draw_categories(count: usize, seed: u64) -> Vec<i32> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|_| rng.below(CATEGORY_VALUES as u64) as i32)
        .collect()
}

/// Builds the run's data and checks it is something both engines accept.
pub fn load(settings: &Settings, progress: &Progress) -> Result<Dataset, BenchError> {
    // Separate streams for each use, so changing one size does not reshuffle the others.
    let seed = settings.seed;
    let (base, queries, given_truth, synthetic) = match &settings.source {
        DataSource::Synthetic {
            dims,
            clusters,
            seed,
            query_noise,
        } => {
            let rows = settings.rows.unwrap_or(100_000);
            let query_count = settings.queries.unwrap_or(1000);
            progress.say(format!(
                "making {rows} synthetic {dims}-d vectors around {clusters} centres and {query_count} queries"
            ));
            let base = synthetic_base(rows, *dims, *clusters, *seed);
            let queries = perturbed_rows(
                &base,
                query_count,
                true,
                *query_noise,
                seed ^ 0x5155_4552_4945_5321,
            );
            (base, queries, None, true)
        }
        DataSource::Files {
            base: base_path,
            queries: query_path,
            truth,
        } => {
            progress.say(format!("reading {}", base_path.display()));
            let base = read_vectors(base_path, settings.rows)?;
            progress.say(format!(
                "  {} vectors of {} dimensions",
                base.len(),
                base.dims
            ));
            let queries = read_vectors(query_path, settings.queries)?;
            progress.say(format!(
                "reading {}: {} queries",
                query_path.display(),
                queries.len()
            ));
            if queries.dims != base.dims {
                return Err(BenchError::Data(format!(
                    "{} has {} dimensions, {} has {}",
                    query_path.display(),
                    queries.dims,
                    base_path.display(),
                    base.dims
                )));
            }
            let truth = match truth {
                Some(path) => {
                    let neighbours = read_neighbours(path)?;
                    Some(check_truth(neighbours, &queries, base.len(), path)?)
                }
                None => None,
            };
            (base, queries, truth, false)
        }
    };
    if base.len() == 0 || queries.len() == 0 {
        return Err(BenchError::Data(
            "no base vectors or no queries".to_string(),
        ));
    }
    check_vectors(&base, settings.metric, "base vector")?;
    check_vectors(&queries, settings.metric, "query")?;

    let categories = draw_categories(base.len(), seed ^ 0xCA7E_6021);
    let new_count = settings.insert_rows.min(base.len() / 10).max(1);
    let new_rows = perturbed_rows(
        &base,
        new_count,
        synthetic,
        NEW_ROW_NOISE,
        seed ^ 0x1D5E_2700,
    );
    let new_categories = draw_categories(new_count, seed ^ 0x1D5E_2701);
    Ok(Dataset {
        base,
        queries,
        given_truth,
        categories,
        new_rows,
        new_categories,
    })
}

/// Refuses what either engine would refuse, before anything is loaded: NaN, infinities, and zero
/// vectors under cosine (they have no direction).
fn check_vectors(matrix: &Matrix, metric: Metric, what: &str) -> Result<(), BenchError> {
    for index in 0..matrix.len() {
        let row = matrix.row(index);
        if row.iter().any(|x| !x.is_finite()) {
            return Err(BenchError::Data(format!(
                "{what} {index} has a NaN or infinite element"
            )));
        }
        if metric == Metric::Cosine && row.iter().all(|&x| x == 0.0) {
            return Err(BenchError::Data(format!(
                "{what} {index} is a zero vector, which has no cosine distance"
            )));
        }
    }
    Ok(())
}

fn check_truth(
    mut neighbours: Vec<Vec<u32>>,
    queries: &Matrix,
    base_rows: usize,
    path: &Path,
) -> Result<Vec<Vec<u32>>, BenchError> {
    if neighbours.len() < queries.len() {
        return Err(BenchError::Data(format!(
            "{}: {} rows of neighbours for {} queries",
            path.display(),
            neighbours.len(),
            queries.len()
        )));
    }
    neighbours.truncate(queries.len());
    for (query, row) in neighbours.iter().enumerate() {
        if let Some(&id) = row.iter().find(|&&id| id as usize >= base_rows) {
            return Err(BenchError::Data(format!(
                "{}: query {query} lists neighbour {id}, past the {base_rows} base vectors",
                path.display()
            )));
        }
    }
    Ok(neighbours)
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|ext| ext.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

fn open(path: &Path) -> Result<BufReader<File>, BenchError> {
    File::open(path)
        .map(BufReader::new)
        .with_context(|| format!("opening {}", path.display()))
}

/// Float vectors from `.fvecs` or `.npy`; at most `limit` of them.
pub fn read_vectors(path: &Path, limit: Option<usize>) -> Result<Matrix, BenchError> {
    let name = path.display().to_string();
    let mut matrix = match extension(path).as_str() {
        "fvecs" => read_vecs(open(path)?, limit, &name, f32::from_le_bytes)?.into(),
        "npy" => {
            let array = read_npy(open(path)?, &name)?;
            if array.descr != NpyType::F32 {
                return Err(BenchError::Data(format!(
                    "{name}: vectors must be little-endian float32 ('<f4'), not {:?}",
                    array.descr
                )));
            }
            Matrix {
                dims: array.columns,
                values: array
                    .data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            }
        }
        other => {
            return Err(BenchError::Data(format!(
                "{name}: unknown extension '{other}' (.fvecs or .npy)"
            )))
        }
    };
    if let Some(limit) = limit {
        matrix.truncate(limit);
    }
    Ok(matrix)
}

/// Neighbour ids from `.ivecs` or `.npy` (int32 or int64).
pub fn read_neighbours(path: &Path) -> Result<Vec<Vec<u32>>, BenchError> {
    let name = path.display().to_string();
    let (columns, ids): (usize, Vec<i64>) = match extension(path).as_str() {
        "ivecs" => {
            let rows = read_vecs(open(path)?, None, &name, i32::from_le_bytes)?;
            (rows.dims, rows.values.into_iter().map(i64::from).collect())
        }
        "npy" => {
            let array = read_npy(open(path)?, &name)?;
            let ids = match array.descr {
                NpyType::I32 => array
                    .data
                    .chunks_exact(4)
                    .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    .collect(),
                NpyType::I64 => array
                    .data
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect(),
                NpyType::F32 => {
                    return Err(BenchError::Data(format!(
                        "{name}: neighbour ids must be integers ('<i4' or '<i8'), not float32"
                    )))
                }
            };
            (array.columns, ids)
        }
        other => {
            return Err(BenchError::Data(format!(
                "{name}: unknown extension '{other}' (.ivecs or .npy)"
            )))
        }
    };
    ids.chunks(columns.max(1))
        .enumerate()
        .map(|(row, chunk)| {
            chunk
                .iter()
                .map(|&id| {
                    u32::try_from(id).map_err(|_| {
                        BenchError::Data(format!("{name}: row {row} has neighbour id {id}"))
                    })
                })
                .collect()
        })
        .collect()
}

/// Reads the ANN-benchmarks layout: per vector a little-endian i32 count, then that many 4-byte
/// little-endian elements. Every vector must have the same count.
fn read_vecs<R: Read, T: Copy>(
    mut reader: R,
    limit: Option<usize>,
    name: &str,
    decode: fn([u8; 4]) -> T,
) -> Result<Matrix4<T>, BenchError> {
    let mut dims: Option<usize> = None;
    let mut values = Vec::new();
    let mut rows = 0usize;
    let mut buffer = Vec::new();
    while limit.is_none_or(|limit| rows < limit) {
        let mut count_bytes = [0u8; 4];
        match read_full(&mut reader, &mut count_bytes).with_context(|| format!("reading {name}"))? {
            0 => break,
            4 => {}
            _ => {
                return Err(BenchError::Data(format!(
                    "{name}: ends inside the length of vector {rows}"
                )))
            }
        }
        let count = i32::from_le_bytes(count_bytes);
        let count = usize::try_from(count)
            .ok()
            .filter(|&count| count > 0 && count <= 1 << 20)
            .ok_or_else(|| {
                BenchError::Data(format!(
                    "{name}: vector {rows} declares {count} elements (not a .fvecs/.ivecs file?)"
                ))
            })?;
        match dims {
            None => dims = Some(count),
            Some(dims) if dims != count => {
                return Err(BenchError::Data(format!(
                    "{name}: vector {rows} has {count} elements, the first had {dims}"
                )))
            }
            Some(_) => {}
        }
        buffer.resize(count * 4, 0);
        let read =
            read_full(&mut reader, &mut buffer).with_context(|| format!("reading {name}"))?;
        if read != buffer.len() {
            return Err(BenchError::Data(format!(
                "{name}: ends inside vector {rows} ({read} of {} bytes)",
                buffer.len()
            )));
        }
        values.extend(
            buffer
                .chunks_exact(4)
                .map(|b| decode([b[0], b[1], b[2], b[3]])),
        );
        rows += 1;
    }
    let dims = dims.ok_or_else(|| BenchError::Data(format!("{name}: no vectors in it")))?;
    Ok(Matrix4 { dims, values })
}

/// Rows of 4-byte elements, floats or ids.
struct Matrix4<T> {
    dims: usize,
    values: Vec<T>,
}

impl From<Matrix4<f32>> for Matrix {
    fn from(rows: Matrix4<f32>) -> Self {
        Matrix {
            dims: rows.dims,
            values: rows.values,
        }
    }
}

/// Like `read_exact`, but reports how much it read before the end instead of failing.
fn read_full<R: Read>(reader: &mut R, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NpyType {
    F32,
    I32,
    I64,
}

struct NpyArray {
    descr: NpyType,
    columns: usize,
    data: Vec<u8>,
}

/// Reads a 2-D little-endian C-order `.npy` array (format versions 1 to 3); its header is a
/// Python dict literal, parsed just enough for 'descr', 'fortran_order' and 'shape'.
fn read_npy<R: Read>(mut reader: R, name: &str) -> Result<NpyArray, BenchError> {
    let bad = |what: &str| BenchError::Data(format!("{name}: not a usable .npy file: {what}"));
    let mut preamble = [0u8; 8];
    if read_full(&mut reader, &mut preamble).with_context(|| format!("reading {name}"))? != 8
        || &preamble[..6] != b"\x93NUMPY"
    {
        return Err(bad("no NUMPY magic"));
    }
    let header_len = match preamble[6] {
        1 => {
            let mut len = [0u8; 2];
            if read_full(&mut reader, &mut len).with_context(|| format!("reading {name}"))? != 2 {
                return Err(bad("truncated header"));
            }
            usize::from(u16::from_le_bytes(len))
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            if read_full(&mut reader, &mut len).with_context(|| format!("reading {name}"))? != 4 {
                return Err(bad("truncated header"));
            }
            u32::from_le_bytes(len) as usize
        }
        version => return Err(bad(&format!("format version {version}"))),
    };
    if header_len > 1 << 20 {
        return Err(bad("header longer than 1 MB"));
    }
    let mut header = vec![0u8; header_len];
    if read_full(&mut reader, &mut header).with_context(|| format!("reading {name}"))? != header_len
    {
        return Err(bad("truncated header"));
    }
    let header = String::from_utf8_lossy(&header).into_owned();

    let descr = dict_value(&header, "descr").ok_or_else(|| bad("no 'descr'"))?;
    let descr = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f4" => NpyType::F32,
        "<i4" => NpyType::I32,
        "<i8" => NpyType::I64,
        other => {
            return Err(bad(&format!(
                "element type {other} (want '<f4', or '<i4'/'<i8' for neighbours)"
            )))
        }
    };
    let fortran = dict_value(&header, "fortran_order").ok_or_else(|| bad("no 'fortran_order'"))?;
    if fortran != "False" {
        return Err(bad("Fortran order (save it with C order)"));
    }
    let shape = dict_value(&header, "shape").ok_or_else(|| bad("no 'shape'"))?;
    let dims: Vec<usize> = shape
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| part.trim_end_matches('L').parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(&format!("shape {shape}")))?;
    let [rows, columns] = dims[..] else {
        return Err(bad(&format!("shape {shape}, not 2-D")));
    };
    if columns == 0 {
        return Err(bad("zero columns"));
    }
    let element = match descr {
        NpyType::F32 | NpyType::I32 => 4,
        NpyType::I64 => 8,
    };
    let bytes = rows
        .checked_mul(columns)
        .and_then(|n| n.checked_mul(element))
        .ok_or_else(|| bad("shape too large"))?;
    let mut data = Vec::new();
    let read = reader
        .take(bytes as u64)
        .read_to_end(&mut data)
        .with_context(|| format!("reading {name}"))?;
    if read != bytes {
        return Err(bad(&format!("{read} bytes of data, shape needs {bytes}")));
    }
    Ok(NpyArray {
        descr,
        columns,
        data,
    })
}

/// The value text of `'key': value` in a Python dict literal: up to the next top-level comma.
fn dict_value(header: &str, key: &str) -> Option<String> {
    let start = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[start + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0i32;
    let mut end = rest.len();
    for (position, character) in rest.char_indices() {
        match character {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => {
                end = position;
                break;
            }
            _ => {}
        }
    }
    Some(rest[..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn fvecs(rows: &[&[f32]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for row in rows {
            bytes.extend_from_slice(&(row.len() as i32).to_le_bytes());
            for x in *row {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
        bytes
    }

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // Padded so the data starts on a 64-byte boundary, as numpy writes it.
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn fvecs_round_trip_and_limit() {
        let bytes = fvecs(&[&[1.0, 2.0], &[3.0, 4.5], &[-1.0, 0.0]]);
        let rows: Matrix = read_vecs(Cursor::new(&bytes), None, "t", f32::from_le_bytes)
            .expect("valid")
            .into();
        assert_eq!(rows.dims, 2);
        assert_eq!(rows.values, vec![1.0, 2.0, 3.0, 4.5, -1.0, 0.0]);
        let first: Matrix = read_vecs(Cursor::new(&bytes), Some(1), "t", f32::from_le_bytes)
            .expect("valid")
            .into();
        assert_eq!(first.len(), 1);
    }

    #[test]
    fn ivecs_ids() {
        let mut bytes = Vec::new();
        for row in [[3i32, 1, 2], [0, 5, 4]] {
            bytes.extend_from_slice(&3i32.to_le_bytes());
            for id in row {
                bytes.extend_from_slice(&id.to_le_bytes());
            }
        }
        let rows = read_vecs(Cursor::new(&bytes), None, "t", i32::from_le_bytes).expect("valid");
        assert_eq!(rows.dims, 3);
        assert_eq!(rows.values, vec![3, 1, 2, 0, 5, 4]);
    }

    #[test]
    fn malformed_vecs_are_errors() {
        let good = fvecs(&[&[1.0, 2.0], &[3.0, 4.0]]);
        // Cut inside the second vector, inside a length, an absurd length, mixed lengths, empty.
        let cases: Vec<Vec<u8>> = vec![
            good[..good.len() - 3].to_vec(),
            good[..good.len() - 10].to_vec(),
            (-5i32).to_le_bytes().to_vec(),
            fvecs(&[&[1.0, 2.0], &[3.0]]),
            Vec::new(),
        ];
        for bytes in cases {
            let outcome = read_vecs(Cursor::new(&bytes), None, "t", f32::from_le_bytes);
            assert!(matches!(outcome, Err(BenchError::Data(_))), "{bytes:?}");
        }
    }

    #[test]
    fn npy_float32_and_int64() {
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let array = read_npy(Cursor::new(npy("<f4", "(3, 2)", &data)), "t").expect("valid");
        assert_eq!(array.descr, NpyType::F32);
        assert_eq!(array.columns, 2);
        assert_eq!(array.data, data);

        let ids: Vec<u8> = [7i64, 8].iter().flat_map(|x| x.to_le_bytes()).collect();
        let array = read_npy(Cursor::new(npy("<i8", "(1, 2)", &ids)), "t").expect("valid");
        assert_eq!((array.descr, array.columns), (NpyType::I64, 2));
    }

    #[test]
    fn malformed_npy_is_an_error() {
        let data = [0u8; 24];
        let cases = vec![
            b"NUMPY nonsense".to_vec(),
            npy("<f4", "(3, 2)", &data[..20]),
            npy(">f4", "(3, 2)", &data),
            npy("<f4", "(6,)", &data),
            npy("<f4", "(a, b)", &data),
            npy("<f4", "(3, 2)", &data)[..12].to_vec(),
        ];
        for bytes in cases {
            assert!(
                matches!(read_npy(Cursor::new(&bytes), "t"), Err(BenchError::Data(_))),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let fortran = npy("<f4", "(3, 2)", &data);
        let text = String::from_utf8_lossy(&fortran).replace("False", "True ");
        assert!(read_npy(Cursor::new(text.as_bytes()), "t").is_err());
    }

    #[test]
    fn files_by_extension() {
        let dir = std::env::temp_dir().join(format!("hannoy_bench_test_{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let npy_path = dir.join("base.npy");
        std::fs::write(&npy_path, npy("<f4", "(3, 2)", &data)).expect("write");
        let fvecs_path = dir.join("base.fvecs");
        std::fs::write(&fvecs_path, fvecs(&[&[1.0, 2.0], &[3.0, 4.0], &[5.0, 6.0]]))
            .expect("write");
        let from_npy = read_vectors(&npy_path, None).expect("npy");
        let from_fvecs = read_vectors(&fvecs_path, Some(2)).expect("fvecs");
        assert_eq!(from_npy.len(), 3);
        assert_eq!(from_fvecs.values, from_npy.values[..4]);

        let ids: Vec<u8> = [2i32, 0, 1, 2]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let truth_path = dir.join("truth.npy");
        std::fs::write(&truth_path, npy("<i4", "(2, 2)", &ids)).expect("write");
        assert_eq!(
            read_neighbours(&truth_path).expect("truth"),
            vec![vec![2, 0], vec![1, 2]]
        );
        // Floats are not ids, ids are not vectors, and a .txt is neither.
        assert!(read_neighbours(&npy_path).is_err());
        assert!(read_vectors(&truth_path, None).is_err());
        assert!(read_vectors(&dir.join("base.txt"), None).is_err());
        assert!(read_vectors(&dir.join("missing.fvecs"), None).is_err());
        let negative: Vec<u8> = [-1i32, 0].iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(&truth_path, npy("<i4", "(1, 2)", &negative)).expect("write");
        assert!(read_neighbours(&truth_path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn synthetic_data_is_deterministic_and_normalised() {
        let first = synthetic_base(50, 8, 3, 7);
        assert_eq!(first, synthetic_base(50, 8, 3, 7));
        assert_ne!(first, synthetic_base(50, 8, 3, 8));
        for index in 0..first.len() {
            let norm: f64 = first.row(index).iter().map(|&x| f64::from(x).powi(2)).sum();
            assert!((norm - 1.0).abs() < 1e-5);
        }
        let categories = draw_categories(10_000, 1);
        let below_100 = categories.iter().filter(|&&c| c < 100).count();
        assert!((50..150).contains(&below_100), "{below_100}");
    }
}
