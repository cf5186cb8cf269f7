//! libFuzzer entry for `regbox::fuzzing::verb`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| regbox::fuzzing::verb(data));
