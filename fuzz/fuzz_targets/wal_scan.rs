//! Any bytes after a valid log header into the log scanner: it must return records or a
//! typed error, never panic; whatever it accepts, written again, reads back the same.
#![no_main]

use std::path::Path;

use braid_storage::wal::{WAL_MAGIC, WAL_VERSION, scan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = Vec::with_capacity(16 + data.len());
    bytes.extend_from_slice(WAL_MAGIC);
    bytes.extend_from_slice(&WAL_VERSION.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(data);
    let Ok((records, valid)) = scan(Path::new("fuzz.log"), &bytes) else { return };
    assert!(valid as usize <= bytes.len());
    let (again, again_valid) = scan(Path::new("fuzz.log"), &bytes[..valid as usize]).expect("the valid prefix scans");
    assert_eq!(again, records);
    assert_eq!(again_valid, valid);
});
