// SPDX-License-Identifier: GPL-2.0

//! Generates the Rust view of `include/uapi/linux/bus.h` (bindgen, through
//! `scripts/uapi-bindgen.sh`), so that this crate, busctl and the module
//! all read the wire format from the one header.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let top = dir.join("..");
    let header = top.join("include/uapi/linux/bus.h");
    let script = top.join("scripts/uapi-bindgen.sh");
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-env-changed=BINDGEN");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("bus_h.rs");
    let status = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .status()
        .expect("run scripts/uapi-bindgen.sh");
    assert!(
        status.success(),
        "scripts/uapi-bindgen.sh could not generate the UAPI from {}",
        header.display()
    );
}
