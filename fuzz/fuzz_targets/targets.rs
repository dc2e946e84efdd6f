//! Fuzz target `targets`: see `prtip_fuzz::targets`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| prtip_fuzz::targets(data));
