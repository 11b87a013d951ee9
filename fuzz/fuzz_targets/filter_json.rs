//! Any bytes into the filter parser: it must return a filter or a typed error, never
//! panic, and every filter it accepts must survive a print-and-parse round trip.
#![no_main]

use braid_filter::Filter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(filter) = Filter::from_json_str(text) {
        let again = Filter::from_json(&filter.to_json()).expect("a printed filter parses");
        assert_eq!(again, filter);
    }
});
