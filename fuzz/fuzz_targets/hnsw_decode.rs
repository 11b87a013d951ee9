//! Any bytes into the graph decoder: a graph or a typed error, never a panic; every
//! graph it accepts encodes back to the same bytes. Each input is tried twice: as it
//! is (mostly stopped by the checksum) and with its checksum recomputed, so that the
//! structural checks behind the checksum are fuzzed too.
#![no_main]

use braid_hnsw::Hnsw;
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Ok(graph) = Hnsw::from_bytes(bytes) {
        assert_eq!(graph.to_bytes(), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= 4 {
        let mut fixed = data.to_vec();
        let body = fixed.len() - 4;
        let crc = crc32c::crc32c(&fixed[..body]);
        fixed[body..].copy_from_slice(&crc.to_le_bytes());
        check(&fixed);
    }
});
