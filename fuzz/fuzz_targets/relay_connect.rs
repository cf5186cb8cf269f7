//! libFuzzer entry for `regbox::fuzzing::relay_connect`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| regbox::fuzzing::relay_connect(data));
