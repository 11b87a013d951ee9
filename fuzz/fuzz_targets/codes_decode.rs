//! Any bytes into the codes reader, both ways a store reads a codes file: copied to
//! the heap (`Codes::from_bytes`) and held in place in the file's pages
//! (`Codes::hold_from`, for `codes_on_disk`), at each of the eight alignments a body
//! can have. Either gives codes or an error, never a panic. Codes read by copy write
//! back (in the current layout) into bytes that read as the same codes; held codes,
//! which leave their words unchecked for the file's checksum pass, still answer a
//! query's distances without a panic, and equal the copied codes where both read.
#![no_main]

use std::sync::Arc;

use braid_distance::{Codes, CodesBuffer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let copied = Codes::from_bytes(data).ok();
    if let Some(codes) = &copied {
        let written = codes.to_bytes().expect("codes read back are centred");
        let again = Codes::from_bytes(&written).expect("written codes read back");
        assert_eq!(again.to_bytes().as_ref(), Some(&written));
    }
    let at = data.first().map_or(0, |b| usize::from(b % 8));
    let file = Arc::new(CodesBuffer::new(&[&vec![0; at], data].concat()));
    if let Ok(held) = Codes::hold_from(file, at..at + data.len()) {
        let q = held.query(&vec![0.25; held.dim()]);
        for o in 0..held.len().min(64) {
            held.prefetch(o);
            let _ = held.distance(&q, o);
        }
        if let Some(copied) = &copied {
            assert_eq!(held.to_bytes(), copied.to_bytes());
        }
    }
});
