//! libFuzzer entry for `regbox::fuzzing::dot`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| regbox::fuzzing::dot(data));
