//! prtip-suite: the root package. It owns the integration tests (`tests/`) and the
//! benchmarks (`benches/`); shared test helpers live in `tests/common/`.
