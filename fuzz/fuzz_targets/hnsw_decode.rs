//! Any bytes into the graph decoder: a graph or a typed error, never a panic; every
//! graph it accepts encodes back to the same bytes.
#![no_main]

use braid_hnsw::Hnsw;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(graph) = Hnsw::from_bytes(data) {
        assert_eq!(graph.to_bytes(), data);
    }
});
