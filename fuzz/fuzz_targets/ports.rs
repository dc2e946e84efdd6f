//! Fuzz target `ports`: see `prtip_fuzz::ports`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| prtip_fuzz::ports(data));
