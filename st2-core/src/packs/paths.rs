//! Where packs, pack configs and virtualenvs live.

use std::path::{Path, PathBuf};

/// The directories the pack subsystem works in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackPaths {
    /// Directories searched for packs, in order; a pack found in a later one wins over an
    /// earlier one with the same ref. The last one is where `install` puts packs.
    pub packs_base_paths: Vec<PathBuf>,
    /// Pack configs: `<configs_dir>/<pack>.yaml`.
    pub configs_dir: PathBuf,
    /// Per-pack virtualenvs: `<virtualenvs_dir>/<pack>`.
    pub virtualenvs_dir: PathBuf,
}

impl PackPaths {
    /// The layout under a data dir: `<data>/packs`, `<data>/configs`, `<data>/virtualenvs`, with
    /// `system_packs` (bundled packs) searched first.
    pub fn under_data_dir(data_dir: &Path, system_packs: Option<&Path>) -> Self {
        let mut packs_base_paths = Vec::new();
        if let Some(sys) = system_packs {
            packs_base_paths.push(sys.to_path_buf());
        }
        packs_base_paths.push(data_dir.join("packs"));
        Self {
            packs_base_paths,
            configs_dir: data_dir.join("configs"),
            virtualenvs_dir: data_dir.join("virtualenvs"),
        }
    }

    /// Where installed packs go (the last base path).
    pub fn install_dir(&self) -> &Path {
        self.packs_base_paths
            .last()
            .map(PathBuf::as_path)
            .unwrap_or(Path::new("packs"))
    }

    /// The directory of an installed or bundled pack with this ref, if present.
    pub fn find_pack(&self, pack_ref: &str) -> Option<PathBuf> {
        self.packs_base_paths
            .iter()
            .rev()
            .map(|b| b.join(pack_ref))
            .find(|d| d.join("pack.yaml").is_file())
    }

    /// The config file of a pack.
    pub fn config_file(&self, pack_ref: &str) -> PathBuf {
        self.configs_dir.join(format!("{pack_ref}.yaml"))
    }

    /// The virtualenv dir of a pack.
    pub fn virtualenv(&self, pack_ref: &str) -> PathBuf {
        self.virtualenvs_dir.join(pack_ref)
    }
}
