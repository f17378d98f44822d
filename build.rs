//! Records what `c2 version` says of this build: the git commit it was
//! built from (with `-dirty`) and the target.

#[path = "src/build_info.rs"]
mod build_info;

fn main() {
    let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!(
        "cargo:rustc-env=CAMUS2_BUILD_COMMIT={}",
        build_info::commit(&dir)
    );
    println!(
        "cargo:rustc-env=CAMUS2_BUILD_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    // Again when the commit moves or a file that may be tracked changes.
    for path in [
        "build.rs",
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "tests",
        "docs",
        "examples",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    for file in build_info::git_files(&dir) {
        println!("cargo:rerun-if-changed={file}");
    }
}
