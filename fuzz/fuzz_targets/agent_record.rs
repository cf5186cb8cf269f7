//! libFuzzer entry for `regbox::fuzzing::agent_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| regbox::fuzzing::agent_record(data));
