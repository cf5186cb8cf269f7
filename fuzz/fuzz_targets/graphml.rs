//! libFuzzer entry for `regbox::fuzzing::graphml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| regbox::fuzzing::graphml(data));
