#![no_main]

// The body lives in the library (ggcore::fuzzing::host_calls) so that `cargo test` replays the
// corpus through the same code; see docs/fuzzing.md.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ggcore::fuzzing::host_calls(data));
