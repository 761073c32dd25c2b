//! The release binary's start-up layout (`link/startup.ld`, see `build.rs`) is linked
//! only by release builds, which the test run does not make: a script that lld refuses
//! would first fail at `cargo install`. So this links a small C program with it, through
//! the lld that rustc links with, and runs the result.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory holding the `ld.lld` that rustc hands to `cc` (`-B DIR -fuse-ld=lld`).
fn rustc_lld_dir() -> PathBuf {
    let rustc = |arg: &str| {
        let out = Command::new("rustc").arg(arg).output().expect("run rustc");
        String::from_utf8(out.stdout).expect("rustc prints UTF-8")
    };
    let sysroot = rustc("--print=sysroot");
    let version = rustc("-vV");
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names its host");
    Path::new(sysroot.trim()).join(format!("lib/rustlib/{host}/bin/gcc-ld"))
}

#[test]
fn the_startup_layout_script_links_and_places_what_it_names() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("link/startup.ld");
    let text = std::fs::read_to_string(&script).expect("read link/startup.ld");
    assert!(
        text.contains("INSERT BEFORE .text;"),
        "the script must add to the default layout, not replace it"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    // `main` is on the list (the C runtime's entry runs at every start).
    std::fs::write(dir.path().join("main.c"), "int main(void) { return 7; }\n")
        .expect("write main.c");
    let exe = dir.path().join("main");
    let out = Command::new("cc")
        .arg("-ffunction-sections")
        .arg("-B")
        .arg(rustc_lld_dir())
        .arg("-fuse-ld=lld")
        .arg(format!("-Wl,-T,{}", script.display()))
        .arg("-o")
        .arg(&exe)
        .arg(dir.path().join("main.c"))
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "lld refused link/startup.ld:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).status().expect("run the linked program");
    assert_eq!(run.code(), Some(7));

    let sections = Command::new("readelf")
        .args(["-SW"])
        .arg(&exe)
        .output()
        .expect("run readelf");
    assert!(
        String::from_utf8_lossy(&sections.stdout).contains(".text.canopy_start"),
        "the script did not place `main` in its section"
    );
}
