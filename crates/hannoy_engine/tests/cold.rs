//! Searches of an index whose file is out of the page cache: walks ask the kernel for each
//! step's pages ahead of reading them, exact scans for all their vectors first, and both answer
//! exactly what they answer with every page in memory.

mod common;

use common::*;
use hannoy_engine::{
    Index, IndexOptions, Metric, Neighbor, Quantization, SearchParams, Strategy, VectorRef,
};

/// What a stream returns in its first two batches, and whether it asked for pages ahead.
fn walk(index: &Index, q: &[f32], params: &SearchParams<'_>) -> (Vec<Neighbor>, bool) {
    let reader = index.read().unwrap();
    let mut stream = reader.stream(VectorRef::Floats(q), params).unwrap();
    assert_eq!(stream.is_exact(), params.strategy == Strategy::Exact);
    let mut found = stream.next_batch().unwrap();
    found.extend(stream.next_batch().unwrap());
    (found, stream.advised())
}

#[test]
fn a_search_of_an_evicted_index_asks_for_its_pages_and_answers_as_a_warm_one() {
    let dims = 256;
    let data = embedding_like(6_000, dims, 71);
    let queries = queries(&data, 12, 72);
    // The page cache of a file in memory (tmpfs) cannot be emptied: build on the target disk.
    let parent = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (quantization, neighbour_codes) in [
        (Quantization::None, false),
        (Quantization::Rabitq { bits: 1 }, false),
        (Quantization::Rabitq { bits: 1 }, true),
    ] {
        let dir = tempfile::tempdir_in(parent).unwrap();
        let options = IndexOptions {
            quantization,
            neighbour_codes,
            ..IndexOptions::new(Metric::Cosine, dims)
        };
        let mut index = Index::create(dir.path(), &options).unwrap();
        insert_floats(&index, &data);
        let file = dir.path().join("data.mdb");
        for (codes, strategy) in [
            (false, Strategy::Graph),
            (true, Strategy::Graph),
            (false, Strategy::Exact),
        ] {
            let params = SearchParams {
                ef_search: 40,
                codes,
                strategy,
                ..SearchParams::default()
            };
            // Every page is in memory after the build: no walk asks for any.
            let warm: Vec<Vec<Neighbor>> = queries
                .iter()
                .map(|q| {
                    let (found, advised) = walk(&index, q, &params);
                    assert!(
                        !advised,
                        "{quantization:?}: a walk in memory asked for pages"
                    );
                    found
                })
                .collect();
            for (q, warm) in queries.iter().zip(&warm) {
                let path = index.path().to_path_buf();
                drop(index);
                page_cache::evict(&file);
                let pages = std::fs::metadata(&file).unwrap().len() as usize / 4096;
                let resident = page_cache::resident(&file);
                assert!(
                    resident * 10 < pages,
                    "the file kept {resident} of {pages} pages in memory"
                );
                index = Index::open(&path).unwrap();
                let (cold, advised) = walk(&index, q, &params);
                assert!(
                    advised,
                    "{quantization:?}: a cold walk did not ask for pages"
                );
                assert_eq!(&cold, warm, "{quantization:?}, neighbour codes {neighbour_codes}, codes {codes}, {strategy:?}");
                assert!(
                    page_cache::resident(&file) < pages,
                    "a walk read the whole file"
                );
            }
            // Back in memory for the next pass's warm walks.
            page_cache::read_all(&file);
        }
    }
}
