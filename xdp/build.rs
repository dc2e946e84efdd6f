//! Compiles the XDP programs in `../bpf/*.bpf.c` with clang and generates their
//! libbpf-rs skeletons into `$OUT_DIR` (see bpf/README.md).

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const PROGRAMS: &[&str] = &["scan_filter", "responder", "sink", "pass", "policer"];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let bpf_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("..")
        .join("bpf");
    println!(
        "cargo:rerun-if-changed={}",
        bpf_dir.join("common.h").display()
    );
    for name in PROGRAMS {
        let src = bpf_dir.join(format!("{name}.bpf.c"));
        println!("cargo:rerun-if-changed={}", src.display());
        let obj = out.join(format!("{name}.bpf.o"));
        SkeletonBuilder::new()
            .source(&src)
            .obj(&obj)
            .clang_args([
                "-I/usr/include/x86_64-linux-gnu",
                "-I",
                bpf_dir.to_str().expect("utf-8 path"),
                "-Wall",
                "-Werror",
            ])
            .build_and_generate(out.join(format!("{name}.skel.rs")))
            .unwrap_or_else(|e| {
                panic!(
                    "building the XDP program {} failed: {e:#}\n\
                     needs clang, libbpf-dev and the kernel UAPI headers (see bpf/README.md)",
                    src.display()
                )
            });
    }
}
