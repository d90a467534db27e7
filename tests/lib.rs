//! Test support for the integration suite in `it/`: locating the `ds` binary, model fixtures and the
//! corpus under `data/`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The `ds` binary of this build, built first if needed (`cargo test -p tests` does not build it).
pub fn ds_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target"));
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "cli", "--bin", "ds"])
            .args((profile == "release").then_some("--release"))
            .current_dir(root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the ds binary failed");
        target.join(profile).join("ds")
    })
}
