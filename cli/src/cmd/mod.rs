//! One module per subcommand: its clap `Args` and its `run`.

pub mod completions;
pub mod export;
pub mod history;
pub mod lab;
pub mod live;
pub mod log;
pub mod merge;
pub mod monitor;
pub mod replay;
pub mod scan;
pub mod xdp;
