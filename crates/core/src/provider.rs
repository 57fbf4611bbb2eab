//! Which passkey provider made a credential, from the AAGUID in its authenticator data.
//! A small built-in table names the common providers and says how each syncs (the
//! decision engine needs that); an operator can load the community list
//! (passkeydeveloper/passkey-authenticator-aaguids, JSON keyed by AAGUID with `name` and
//! optional `icon_light`/`icon_dark` data URIs) to name the rest and show icons. An
//! all-zero or unlisted AAGUID is "unknown".

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How a provider's passkeys travel between devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Ecosystem {
    /// iCloud Keychain / Apple Passwords: syncs across the user's Apple devices.
    Apple,
    /// Google Password Manager: syncs across Android and Chrome signed in to the account.
    Google,
    /// Windows Hello: bound to one PC.
    WindowsHello,
    /// Chrome's own profile store on a Mac.
    ChromeProfile,
    /// Samsung Pass on Samsung phones.
    Samsung,
    /// A password manager that follows its app or browser extension (1Password, Bitwarden, …).
    PasswordManager,
    /// Not known.
    Unknown,
}

impl Ecosystem {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apple => "apple",
            Self::Google => "google",
            Self::WindowsHello => "windows-hello",
            Self::ChromeProfile => "chrome-profile",
            Self::Samsung => "samsung",
            Self::PasswordManager => "password-manager",
            Self::Unknown => "unknown",
        }
    }
}

/// A named provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Display name, e.g. "iCloud Keychain".
    pub name: String,
    /// Ecosystem the provider's passkeys live in.
    pub ecosystem: Ecosystem,
    /// Light-theme icon as a data URI, when the loaded list has one.
    pub icon_light: Option<String>,
    /// Dark-theme icon as a data URI, when the loaded list has one.
    pub icon_dark: Option<String>,
}

impl Provider {
    /// The provider of an unlisted or all-zero AAGUID.
    pub fn unknown() -> Self {
        Self { name: UNKNOWN_NAME.into(), ecosystem: Ecosystem::Unknown, icon_light: None, icon_dark: None }
    }
}

/// The name given to an AAGUID nobody has listed.
pub const UNKNOWN_NAME: &str = "unknown";

/// AAGUIDs and names of common providers (facts, not a copy of the community list).
const BUILT_IN: &[(&str, &str, Ecosystem)] = &[
    ("fbfc3007-154e-4ecc-8c0b-6e020557d7bd", "iCloud Keychain", Ecosystem::Apple),
    ("dd4ec289-e01d-41c9-bb89-70fa845d4bf2", "iCloud Keychain (Managed)", Ecosystem::Apple),
    ("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4", "Google Password Manager", Ecosystem::Google),
    ("adce0002-35bc-c60a-648b-0b25f1f05503", "Chrome on Mac", Ecosystem::ChromeProfile),
    ("b5397666-4885-aa6b-cebf-e52262a439a2", "Chromium Browser", Ecosystem::ChromeProfile),
    ("08987058-cadc-4b81-b6e1-30de50dcbe96", "Windows Hello", Ecosystem::WindowsHello),
    ("9ddd1817-af5a-4672-a2b9-3e3dd95000a9", "Windows Hello", Ecosystem::WindowsHello),
    ("6028b017-b1d4-4c02-b4b3-afcdafc96bb2", "Windows Hello", Ecosystem::WindowsHello),
    ("53414d53-554e-4700-0000-000000000000", "Samsung Pass", Ecosystem::Samsung),
    ("bada5566-a7aa-401f-bd96-45619a55120d", "1Password", Ecosystem::PasswordManager),
    ("d548826e-79b4-db40-a3d8-11116f7e8349", "Bitwarden", Ecosystem::PasswordManager),
    ("531126d6-e717-415c-9320-3d9aa6981239", "Dashlane", Ecosystem::PasswordManager),
    ("b84e4048-15dc-4dd0-8640-f4f60813c8af", "NordPass", Ecosystem::PasswordManager),
    ("0ea242b4-43c4-4a1b-8b17-dd6d0b6baec6", "Keeper", Ecosystem::PasswordManager),
    ("f3809540-7f14-49c1-a8b3-8f813b225541", "Enpass", Ecosystem::PasswordManager),
    ("50726f74-6f6e-5061-7373-50726f746f6e", "Proton Pass", Ecosystem::PasswordManager),
    ("fdb141b2-5d84-443e-8a35-4698c205a502", "KeePassXC", Ecosystem::PasswordManager),
    ("b78a0a55-6ef8-d246-a042-ba0f6d55050c", "LastPass", Ecosystem::PasswordManager),
    ("d3452668-01fd-4c12-926c-83a4204853aa", "Microsoft Password Manager", Ecosystem::PasswordManager),
    ("771b48fd-d3d4-4f74-9232-fc157ab0507a", "Edge on Mac", Ecosystem::ChromeProfile),
];

/// Why a community list could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read.
    #[error("cannot read AAGUID list {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not in the community list's format.
    #[error("AAGUID list {path} is not valid: {detail}")]
    Format {
        /// The path.
        path: String,
        /// What is wrong, naming the key where there is one.
        detail: String,
    },
}

#[derive(Deserialize)]
struct ListEntry {
    name: String,
    icon_light: Option<String>,
    icon_dark: Option<String>,
}

/// AAGUID → provider lookups.
#[derive(Debug, Clone, Default)]
pub struct ProviderCatalog {
    by_aaguid: HashMap<Uuid, Provider>,
}

impl ProviderCatalog {
    /// The built-in table only.
    pub fn built_in() -> Self {
        let by_aaguid = BUILT_IN
            .iter()
            .filter_map(|(id, name, eco)| {
                let id = Uuid::parse_str(id).ok()?;
                let p = Provider { name: (*name).into(), ecosystem: *eco, icon_light: None, icon_dark: None };
                Some((id, p))
            })
            .collect();
        Self { by_aaguid }
    }

    /// The built-in table extended by a community list file.
    pub fn with_community_list(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| CatalogError::Read { path: path.display().to_string(), source })?;
        Self::built_in()
            .extend_from_json(&text)
            .map_err(|detail| CatalogError::Format { path: path.display().to_string(), detail })
    }

    /// Adds the entries of a community-format JSON document. Names and icons from the
    /// list win over built-in names; the built-in ecosystem is kept.
    pub fn extend_from_json(mut self, json: &str) -> Result<Self, String> {
        let entries: HashMap<String, ListEntry> =
            serde_json::from_str(json).map_err(|e| format!("expected an object of AAGUID entries with a name: {e}"))?;
        for (key, entry) in entries {
            let id = Uuid::parse_str(&key).map_err(|_| format!("key {key:?} is not an AAGUID"))?;
            for icon in [&entry.icon_light, &entry.icon_dark].into_iter().flatten() {
                if !icon.starts_with("data:image/") {
                    return Err(format!("icon of {key} is not a data:image/ URI"));
                }
            }
            let ecosystem = self.by_aaguid.get(&id).map(|p| p.ecosystem).unwrap_or(Ecosystem::Unknown);
            let provider =
                Provider { name: entry.name, ecosystem, icon_light: entry.icon_light, icon_dark: entry.icon_dark };
            self.by_aaguid.insert(id, provider);
        }
        Ok(self)
    }

    /// The provider of an AAGUID; all-zero and unlisted ones are unknown.
    pub fn lookup(&self, aaguid: &Uuid) -> Provider {
        if aaguid.is_nil() {
            return Provider::unknown();
        }
        self.by_aaguid.get(aaguid).cloned().unwrap_or_else(Provider::unknown)
    }

    /// How many AAGUIDs are named.
    pub fn len(&self) -> usize {
        self.by_aaguid.len()
    }

    /// True when nothing is named.
    pub fn is_empty(&self) -> bool {
        self.by_aaguid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Uuid {
        Uuid::parse_str(s).unwrap()
    }

    #[test]
    fn built_in_names_common_providers() {
        let c = ProviderCatalog::built_in();
        let p = c.lookup(&id("fbfc3007-154e-4ecc-8c0b-6e020557d7bd"));
        assert_eq!((p.name.as_str(), p.ecosystem), ("iCloud Keychain", Ecosystem::Apple));
        assert_eq!(c.lookup(&id("bada5566-a7aa-401f-bd96-45619a55120d")).name, "1Password");
        assert_eq!(c.lookup(&Uuid::nil()).name, "unknown");
        assert_eq!(c.lookup(&id("00000000-0000-0000-0000-000000000001")).name, "unknown");
    }

    #[test]
    fn community_format_extends_and_keeps_ecosystem() {
        let json = r#"{"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": {"name": "Apple Passwords", "icon_light": "data:image/svg+xml;base64,AA=="},
                      "a11a5faa-9f32-4b8c-8c5d-2f7d13e8c942": {"name": "AliasVault"}}"#;
        let c = ProviderCatalog::built_in().extend_from_json(json).unwrap();
        let apple = c.lookup(&id("fbfc3007-154e-4ecc-8c0b-6e020557d7bd"));
        assert_eq!(apple.name, "Apple Passwords");
        assert_eq!(apple.ecosystem, Ecosystem::Apple);
        assert!(apple.icon_light.is_some());
        assert_eq!(c.lookup(&id("a11a5faa-9f32-4b8c-8c5d-2f7d13e8c942")).name, "AliasVault");
    }

    #[test]
    fn empty_list_loads_and_bad_lists_name_the_problem() {
        let c = ProviderCatalog::built_in().extend_from_json("{}").unwrap();
        assert_eq!(c.len(), ProviderCatalog::built_in().len());
        let err = ProviderCatalog::built_in().extend_from_json(r#"{"nope": {"name": "x"}}"#).unwrap_err();
        assert!(err.contains("nope"), "{err}");
        assert!(
            ProviderCatalog::built_in().extend_from_json(r#"{"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": {}}"#).is_err()
        );
        assert!(ProviderCatalog::built_in().extend_from_json("[]").is_err());
    }

    #[test]
    fn loads_the_shared_community_list() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/aaguid.json");
        let c = ProviderCatalog::with_community_list(&path).unwrap();
        assert!(c.len() >= 50, "only {} entries", c.len());
        let g = c.lookup(&id("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4"));
        assert_eq!(g.name, "Google Password Manager");
        assert_eq!(g.ecosystem, Ecosystem::Google);
        assert!(g.icon_dark.is_some());
    }
}
