//! Fuzz target `service_probes`: see `prtip_fuzz::service_probes`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| prtip_fuzz::service_probes(data));
