//! Packs: reading pack directories, registering their content into the store, installing and
//! removing packs.
//!
//! - [`loader`]: a pack directory → validated model objects (no store access).
//! - [`register`]: writes loaded packs into the store atomically (`st2ctl reload`).
//! - [`install`]: install/remove from git or local dirs, dependencies, version checks.
//! - [`index`]: pack index files (StackStorm's `index.json`).
//! - [`virtualenv`]: per-pack Python virtualenvs.
//! - [`paths`]: where packs, configs and virtualenvs live.

mod builtin;
mod error;
pub mod index;
pub mod install;
pub mod loader;
pub mod paths;
pub mod register;
pub mod source;
pub mod virtualenv;

pub use error::PackError;
pub use loader::{load_pack, read_pack_meta, ContentTypes, LoadedPack};
pub use paths::PackPaths;
pub use register::{RegisterOptions, RegisterReport, Registrar};
