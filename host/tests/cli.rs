//! The `canopy` binary's own surface: help, version, completions. (Having an integration
//! test here also makes `cargo test --workspace` build the binary the end-to-end tests
//! in `tests/` run.)

use std::process::Command;

fn canopy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_canopy"))
        .args(args)
        .env_clear()
        .output()
        .expect("run canopy")
}

#[test]
fn help_lists_every_command() {
    let out = canopy(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "new",
        "ls",
        "attach",
        "send",
        "stop",
        "rm",
        "status",
        "watch",
        "host",
        "completions",
    ] {
        assert!(
            help.contains(&format!("  {cmd} ")),
            "{cmd} missing from:\n{help}"
        );
    }
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = canopy(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("attach"),
            "{shell}"
        );
    }
}

#[test]
fn a_usage_error_exits_2() {
    let out = canopy(&["new"]);
    assert_eq!(out.status.code(), Some(2));
}
