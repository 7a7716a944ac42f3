//! `pack.name` resource references.

use std::fmt;

/// The pack of resources that name none.
pub const DEFAULT_PACK: &str = "default";

/// A `pack.name` reference. The pack part never contains a dot; the name may.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    /// Pack ref.
    pub pack: String,
    /// Resource name within the pack.
    pub name: String,
}

impl ResourceRef {
    /// Builds a reference from its parts.
    pub fn new(pack: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            pack: pack.into(),
            name: name.into(),
        }
    }

    /// Parses `pack.name`; `None` when there is no dot or either side is empty.
    pub fn parse(s: &str) -> Option<Self> {
        let (pack, name) = s.split_once('.')?;
        if pack.is_empty() || name.is_empty() {
            return None;
        }
        Some(Self::new(pack, name))
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.pack, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_on_first_dot() {
        let r = ResourceRef::parse("core.st2.webhook").expect("valid");
        assert_eq!(r.pack, "core");
        assert_eq!(r.name, "st2.webhook");
        assert_eq!(r.to_string(), "core.st2.webhook");
        assert!(ResourceRef::parse("nodot").is_none());
        assert!(ResourceRef::parse(".x").is_none());
        assert!(ResourceRef::parse("x.").is_none());
    }
}
