//! libFuzzer entry for `regbox::fuzzing::edgelist`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| regbox::fuzzing::edgelist(data));
