//! libFuzzer entry for `regbox::fuzzing::agent_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| regbox::fuzzing::agent_request(data));
