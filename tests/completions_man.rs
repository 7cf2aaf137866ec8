//! `pgbarge completions SHELL` and `pgbarge man [COMMAND]`: scripts and pages
//! made from the same clap definition as the flags, so they name every one.

use std::process::{Command, Stdio};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgbarge"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pgbarge");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let (code, bash, _) = run(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(bash.contains("_pgbarge()") && bash.contains("--ssh-key"), "{bash}");
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("pgbarge.bash");
    std::fs::write(&script, &bash).unwrap();
    let ok = Command::new("bash").arg("-n").arg(&script).status().unwrap();
    assert!(ok.success(), "the bash script parses");

    let (code, zsh, _) = run(&["completions", "zsh"]);
    assert_eq!(code, 0);
    assert!(zsh.starts_with("#compdef pgbarge"), "{zsh}");
    let (code, fish, _) = run(&["completions", "fish"]);
    assert_eq!(code, 0);
    assert!(fish.contains("complete -c pgbarge") && fish.contains("-l target-ssh"), "{fish}");

    let (code, _, err) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn man_pages_for_pgbarge_and_each_command() {
    let (code, page, _) = run(&["man"]);
    assert_eq!(code, 0);
    assert!(page.contains(".TH pgbarge 1"), "{page}");
    assert!(page.contains("backup") && page.contains("verbose"), "{page}");
    let (code, page, _) = run(&["man", "backup"]);
    assert_eq!(code, 0);
    assert!(page.contains(".TH pgbarge\\-backup") || page.contains(".TH pgbarge-backup"), "{page}");
    assert!(page.contains("ssh"), "{page}");
    let (code, _, err) = run(&["man", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("no command \"nope\""), "{err}");
}
