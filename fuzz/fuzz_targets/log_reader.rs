//! Fuzz target `log_reader`: see `prtip_fuzz::log_reader`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| prtip_fuzz::log_reader(data));
