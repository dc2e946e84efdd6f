//! Fuzz target `classify`: see `prtip_fuzz::classify`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| prtip_fuzz::classify(data));
