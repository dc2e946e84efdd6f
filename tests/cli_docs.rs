//! What the binary says about itself: shell completions (`prtip completions`), man
//! pages (`prtip man`), and help text that points at things that exist.

mod common;

use std::process::Command;

fn run(args: &[&str]) -> String {
    let out = common::prtip().args(args).output().unwrap();
    assert!(out.status.success(), "prtip {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completion_loads_and_completes_subcommands_and_flags() {
    let script = run(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prtip.bash");
    std::fs::write(&file, &script).unwrap();
    // Source the script in a real bash and ask its completion function what follows
    // `prtip ` and `prtip scan --top`.
    let probe = format!(
        r#"source {f}
COMP_WORDS=(prtip ""); COMP_CWORD=1; _prtip prtip "" prtip; echo "SUB ${{COMPREPLY[*]}}"
COMP_WORDS=(prtip scan --top); COMP_CWORD=2; _prtip prtip --top scan; echo "FLAG ${{COMPREPLY[*]}}""#,
        f = file.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let sub = text.lines().find(|l| l.starts_with("SUB ")).unwrap();
    for name in ["scan", "export", "history", "replay", "completions", "man"] {
        assert!(sub.split(' ').any(|w| w == name), "{name} missing in {sub}");
    }
    let flag = text.lines().find(|l| l.starts_with("FLAG ")).unwrap();
    assert_eq!(flag, "FLAG --top-ports", "{text}");
}

#[test]
fn zsh_and_fish_completions_name_the_scan_flags() {
    let zsh = run(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef prtip"), "{}", &zsh[..40]);
    assert!(zsh.contains("--top-ports"));
    let fish = run(&["completions", "fish"]);
    assert!(fish.contains("complete -c prtip"));
    assert!(fish.contains("-l top-ports"));
    // A shell prtip does not support is bad input (exit 2), naming the choices.
    let out = common::prtip()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bash, zsh, fish"));
}

#[test]
fn man_pages_render_with_man_and_cover_every_subcommand() {
    let page = run(&["man"]);
    assert!(page.contains(".TH PRTIP 1"), "{}", &page[..200]);
    let dir = tempfile::tempdir().unwrap();
    run(&["man", "--dir", dir.path().to_str().unwrap()]);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for want in [
        "prtip.1",
        "prtip-scan.1",
        "prtip-export.1",
        "prtip-history.1",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.contains("xdp-hold")),
        "hidden command got a page"
    );
    // man(1) formats the scan page, and it documents the timing templates.
    let out = Command::new("man")
        .arg("-l")
        .arg(dir.path().join("prtip-scan.1"))
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("prtip-scan - Scan targets"), "{text}");
    assert!(text.contains("-T5 insane"), "{text}");
}

#[test]
fn timing_help_shows_the_templates_instead_of_pointing_elsewhere() {
    let help = run(&["scan", "--help"]);
    assert!(!help.contains("pacing table"), "{help}");
    for line in [
        "-T0 paranoid    0.003 probes/s",
        "-T3 normal      10 000 probes/s",
        "-T5 insane      1 000 000 probes/s",
    ] {
        assert!(help.contains(line), "{line} missing in {help}");
    }
}

#[test]
fn filter_docs_name_only_commands_that_take_filter() {
    // `prtip replay --filter` is refused, so no document may offer it.
    let out = common::prtip()
        .args(["replay", "--filter", "port 22", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let root = env!("CARGO_MANIFEST_DIR");
    for doc in ["filter/README.md", "filter/src/lib.rs"] {
        let text = std::fs::read_to_string(format!("{root}/{doc}")).unwrap();
        assert!(
            !text.contains("`prtip replay --filter`"),
            "{doc} offers replay --filter"
        );
    }
}
