#![no_main]

// The body lives in the library (ggcore::fuzzing::topic_match) so that `cargo test` replays the
// corpus through the same code; see docs/fuzzing.md.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ggcore::fuzzing::topic_match(data));
