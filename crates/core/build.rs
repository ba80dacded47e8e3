//! Refuses to build the video encoder without its assembly: OpenH264's build quietly leaves the
//! assembly out when `nasm` is missing, and the encoder is then about three times slower, too
//! slow for 1080p at 30 frames a second on the machines presenters use.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=PATH");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os != "linux" || !matches!(arch.as_str(), "x86_64" | "x86") {
        return;
    }
    let nasm = std::process::Command::new("nasm").arg("-v").output();
    if !nasm.is_ok_and(|output| output.status.success()) {
        println!(
            "cargo::error=nasm is needed to build OpenH264's assembly (the video encoder is about \
             three times slower without it): `sudo apt-get install nasm`, or run `cargo xtask test` \
             / `cargo xtask run`, which install it"
        );
    }
}
