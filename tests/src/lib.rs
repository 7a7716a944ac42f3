//! Shared helpers of the end-to-end tests: where the repository's packs and fixtures are, and
//! small file utilities; [`api`]: a platform behind the real router for API tests.

pub mod api;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bundled packs (`packs/`).
pub fn bundled_packs() -> PathBuf {
    repo_root().join("packs")
}

/// A fixture pack under `tests/fixtures/packs/`.
pub fn fixture_pack(name: &str) -> PathBuf {
    repo_root()
        .join("tests")
        .join("fixtures")
        .join("packs")
        .join(name)
}

/// The fixture configs dir (`tests/fixtures/configs/`).
pub fn fixture_configs() -> PathBuf {
    repo_root().join("tests").join("fixtures").join("configs")
}

/// Copies a directory tree.
pub fn copy_dir(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let to = dst.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}
