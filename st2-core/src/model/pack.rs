//! Packs (`pack.yaml`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{document, JsonMap};
use crate::store::Collection;

/// Packs that ship with the platform; users cannot install packs with these refs over them.
pub const SYSTEM_PACKS: &[&str] = &["core", "packs", "linux", "chatops", "default"];

/// A registered pack, from its `pack.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pack {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Pack ref: `^[a-z0-9_]+$`, the directory name once installed.
    #[serde(rename = "ref")]
    pub pack_ref: String,
    /// Display name.
    pub name: String,
    /// What the pack does.
    pub description: String,
    /// Who wrote it.
    pub author: String,
    /// Strict semver version.
    pub version: String,
    /// Supported StackStorm versions, e.g. `">=3.0.0, <4.0.0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stackstorm_version: Option<String>,
    /// Supported major Python versions (`"2"`, `"3"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub python_versions: Vec<String>,
    /// Install specs of packs this one needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// Free-form system requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Value>,
    /// Search keywords.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// Author e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Contributors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contributors: Vec<String>,
    /// Files of the pack, relative to its directory (filled by the registrar).
    #[serde(default)]
    pub files: Vec<String>,
    /// Absolute path of the pack directory (filled by the registrar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `pack:<ref>`.
    #[serde(default)]
    pub uid: String,
    /// Fields of pack.yaml we do not model, kept verbatim (pack.yaml allows extra properties).
    #[serde(flatten)]
    pub extra: JsonMap,
}
document!(Pack, Collection::Packs);
