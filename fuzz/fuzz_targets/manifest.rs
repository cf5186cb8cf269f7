//! libFuzzer entry for `regbox::fuzzing::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| regbox::fuzzing::manifest(data));
