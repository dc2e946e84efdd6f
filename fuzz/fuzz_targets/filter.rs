//! Fuzz target `filter`: see `prtip_fuzz::filter`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| prtip_fuzz::filter(data));
