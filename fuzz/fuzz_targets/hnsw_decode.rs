//! Any bytes into the graph decoder: a graph or a typed error, never a panic; every
//! graph it accepts in the current format (3) encodes back to the same bytes, and one
//! in an older format encodes as format 3 into bytes that decode to the same graph
//! (which encodes back to them). Each input is tried twice: as it
//! is (mostly stopped by the checksum) and with its checksum recomputed, so that the
//! structural checks behind the checksum are fuzzed too.
#![no_main]

use braid_hnsw::Hnsw;
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Ok(graph) = Hnsw::from_bytes(bytes) {
        let written = graph.to_bytes();
        if bytes[8..12] == braid_hnsw::FORMAT_VERSION.to_le_bytes() {
            assert_eq!(written, bytes);
        } else {
            let again = Hnsw::from_bytes(&written).expect("the graph as written reads back");
            assert_eq!(again.to_bytes(), written);
        }
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
