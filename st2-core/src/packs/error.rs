//! Pack errors.

use std::path::PathBuf;

use crate::schema::ContentError;
use crate::store::StoreError;

/// What can go wrong loading, registering, installing or removing packs.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// One or more metadata files are invalid.
    #[error("{}", join_errors(.0))]
    InvalidContent(Vec<ContentError>),
    /// Reading the pack from disk failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Persistence failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No pack with that ref.
    #[error("pack \"{0}\" not found")]
    NotFound(String),
    /// Any other install failure, with the reason.
    #[error("{0}")]
    Install(String),
    /// An install spec that cannot be parsed.
    #[error("invalid pack install spec \"{spec}\": {reason}")]
    InvalidSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A pack index that cannot be read or is malformed.
    #[error("pack index {location}: {reason}")]
    Index {
        /// Path or URL of the index.
        location: String,
        /// What went wrong.
        reason: String,
    },
    /// Cloning or checking out a git repository failed.
    #[error("git repository {url}: {reason}")]
    Git {
        /// The repository URL.
        url: String,
        /// libgit2's message.
        reason: String,
    },
    /// The version / git ref asked for does not exist in the repository.
    #[error(
        "\"{reference}\" is not a valid version, hash, tag or branch in {url}{}",
        if available.is_empty() {
            String::new()
        } else {
            format!(". Available versions are: {}", available.join(", "))
        }
    )]
    UnknownRef {
        /// The repository URL.
        url: String,
        /// The ref asked for.
        reference: String,
        /// The repository's `vX.Y.Z` tags.
        available: Vec<String>,
    },
    /// The pack does not support this StackStorm or Python version (overridable with force).
    #[error("pack \"{pack}\" {reason}; install with force to override (the pack may not work)")]
    Incompatible {
        /// Pack ref.
        pack: String,
        /// What it requires.
        reason: String,
    },
    /// Dependencies pinned at versions other than the installed ones.
    #[error("conflicting pack dependencies (install with force to keep the installed versions): {}", .0.join("; "))]
    DependencyConflict(Vec<String>),
    /// Creating the pack's virtualenv or installing its requirements failed.
    #[error("virtualenv of pack \"{pack}\": {reason}")]
    Virtualenv {
        /// Pack ref.
        pack: String,
        /// What failed (with pip's stderr).
        reason: String,
    },
    /// Installing one spec failed; `source` says why.
    #[error("cannot install \"{spec}\": {source}")]
    InstallSpec {
        /// The spec being installed (a dependency's own spec for dependencies).
        spec: String,
        /// The failure.
        source: Box<PackError>,
    },
}

impl PackError {
    /// The innermost error, looking through [`PackError::InstallSpec`] context.
    pub fn root(&self) -> &PackError {
        match self {
            Self::InstallSpec { source, .. } => source.root(),
            other => other,
        }
    }
}

fn join_errors(errs: &[ContentError]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
