//! Pack config schemas (`config.schema.yaml`) and pack configs (`<configs dir>/<pack>.yaml`).

use serde::{Deserialize, Serialize};

use super::{document, JsonMap};
use crate::store::Collection;

/// A pack's config schema: attribute → parameter schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSchema {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Pack ref.
    pub pack: String,
    /// The schema attributes.
    pub attributes: JsonMap,
}
document!(ConfigSchema, Collection::ConfigSchemas);

/// A pack's config values (schema defaults merged in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Store id.
    #[serde(default)]
    pub id: String,
    /// Pack ref.
    pub pack: String,
    /// The values.
    pub values: JsonMap,
}
document!(Config, Collection::Configs);
