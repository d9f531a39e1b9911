//! Compiles `tests/smoke.c` against the static library and the committed
//! header with the system C compiler, and runs it.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn a_c_program_talks_through_the_abi() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // `cargo test` links the tests against the rlib and may leave an older
    // static library in place: build it (a no-op when it is current).
    // The test binary lives in <target>/<profile>/deps; the library one up.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "zerorelay-c", "--lib"]);
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    assert!(build.status().unwrap().success());
    let lib = profile_dir.join("libzerorelay_c.a");
    assert!(lib.exists(), "{} is built", lib.display());
    let out = std::env::temp_dir().join(format!("zerorelay-smoke-{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .arg("-std=c11")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(dir.join("include"))
        .arg(dir.join("tests/smoke.c"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm"])
        .arg("-o")
        .arg(&out)
        .status()
        .expect("a C compiler is installed");
    assert!(status.success(), "the C program compiles");
    let run = Command::new(&out).output().unwrap();
    std::fs::remove_file(&out).ok();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
}
