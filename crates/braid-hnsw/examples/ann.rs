//! braid-hnsw on its own: build an index over your vectors, search it with and without
//! a filter, delete, save and load.
//!
//! `cargo run --release -p braid-hnsw --example ann`

use braid_core::{Cardinality, DenseVectors, FnFilter, Metric, PointOffset, VectorSource};
use braid_hnsw::{Hnsw, HnswConfig, HnswError};

fn main() -> Result<(), HnswError> {
    // 10,000 unit vectors in 64 dimensions around 20 directions (deterministic).
    let (n, dim) = (10_000u32, 64);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / 16_777_216.0 - 0.5
    };
    let directions: Vec<Vec<f32>> = (0..20).map(|_| (0..dim).map(|_| next()).collect()).collect();
    let mut vectors = DenseVectors::new(dim);
    for i in 0..n {
        let d = &directions[i as usize % directions.len()];
        let v: Vec<f32> = d.iter().map(|x| x + 0.2 * next()).collect();
        // Stored form for Cosine: normalised once, here.
        let stored = braid_distance::prepare(Metric::Cosine, dim, &v)?;
        vectors.push(&stored);
    }

    let started = std::time::Instant::now();
    let graph = Hnsw::build(&vectors, Metric::Cosine, HnswConfig { m: 16, ef_construct: 100, seed: 7 }, 2)?;
    println!("built {} nodes in {:.2} s on 2 threads", graph.len(), started.elapsed().as_secs_f64());

    let query = vectors.vector(PointOffset(123)).to_vec();
    let hits = graph.search(&vectors, &query, 5, 64, None)?;
    println!("nearest to #123: {:?}", hits.iter().map(|h| (h.offset.0, h.score)).collect::<Vec<_>>());

    // A filter is any predicate over offsets, with an estimate of how many pass.
    let even = FnFilter::new(|o: PointOffset| o.0.is_multiple_of(2), Cardinality::exact(n as usize / 2));
    let (hits, choice) =
        graph.search_auto(&vectors, &query, 5, 64, Some(&even as &dyn braid_core::OffsetFilter))?;
    println!("even offsets only ({choice}): {:?}", hits.iter().map(|h| h.offset.0).collect::<Vec<_>>());
    let rare = FnFilter::new(|o: PointOffset| o.0 % 500 == 3, Cardinality::exact(20));
    let (hits, choice) =
        graph.search_auto(&vectors, &query, 5, 64, Some(&rare as &dyn braid_core::OffsetFilter))?;
    println!("1 in 500 ({choice}): {:?}", hits.iter().map(|h| h.offset.0).collect::<Vec<_>>());

    graph.delete(PointOffset(123));
    let hits = graph.search(&vectors, &query, 3, 64, None)?;
    assert!(hits.iter().all(|h| h.offset != PointOffset(123)));
    println!("after deleting #123: {:?}", hits.iter().map(|h| h.offset.0).collect::<Vec<_>>());

    let bytes = graph.to_bytes();
    let loaded = Hnsw::from_bytes(&bytes)?;
    assert_eq!(loaded.search(&vectors, &query, 3, 64, None)?, hits);
    println!(
        "saved and loaded {} bytes ({:.0} bytes of graph per vector)",
        bytes.len(),
        bytes.len() as f64 / n as f64
    );
    Ok(())
}
