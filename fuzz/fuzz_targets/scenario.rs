//! libFuzzer entry for `regbox::fuzzing::scenario`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| regbox::fuzzing::scenario(data));
