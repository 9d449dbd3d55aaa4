//! A registry hive as the simulator keeps it: key paths and typed values, stored in the hive
//! file itself (`Windows\System32\config\SYSTEM` of a simulated guest volume holds this JSON
//! instead of the binary `regf` format). Loading copies the keys into the simulated registry;
//! unloading writes them back to the file, as Windows flushes a hive on `reg unload`.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::package::RegData;

/// The `format` of a simulated hive file.
pub const HIVE_FORMAT: &str = "passthru-simulated-hive";

/// The keys of a hive: path below the hive root (as first written; compared without case, as
/// Windows does) → value name → data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HiveKeys(pub BTreeMap<String, BTreeMap<String, RegData>>);

#[derive(Serialize, Deserialize)]
struct HiveFile {
    format: String,
    keys: HiveKeys,
}

/// Why a file could not be loaded as a hive.
#[derive(Debug)]
pub enum HiveFileError {
    /// It does not exist.
    Missing,
    /// It is not a (simulated) hive.
    NotAHive,
    /// It could not be read.
    Io(io::Error),
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl HiveKeys {
    /// Reads a hive file.
    pub fn read(path: &Path) -> Result<Self, HiveFileError> {
        let bytes = match fs_err::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(HiveFileError::Missing);
            }
            Err(error) => return Err(HiveFileError::Io(error)),
        };
        match serde_json::from_slice::<HiveFile>(&bytes) {
            Ok(file) if file.format == HIVE_FORMAT => Ok(file.keys),
            _ => Err(HiveFileError::NotAHive),
        }
    }

    /// Writes the hive file.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let file = HiveFile {
            format: HIVE_FORMAT.to_owned(),
            keys: self.clone(),
        };
        let mut text = serde_json::to_string_pretty(&file).map_err(io::Error::other)?;
        text.push('\n');
        fs_err::write(path, text)
    }

    fn key_name(&self, key: &str) -> Option<String> {
        self.0.keys().find(|name| same(name, key)).cloned()
    }

    /// Whether `key` exists: written itself, or the parent of a key that was. The empty path
    /// is the hive's root.
    pub fn exists(&self, key: &str) -> bool {
        let key = key.trim_matches('\\');
        if key.is_empty() {
            return true;
        }
        let prefix = format!("{}\\", key.to_ascii_lowercase());
        self.0.keys().any(|name| {
            let lower = name.to_ascii_lowercase();
            lower == key.to_ascii_lowercase() || lower.starts_with(&prefix)
        })
    }

    /// A value.
    pub fn value(&self, key: &str, name: &str) -> Option<&RegData> {
        let values = self.0.get(&self.key_name(key.trim_matches('\\'))?)?;
        values
            .iter()
            .find(|(value, _)| same(value, name))
            .map(|(_, data)| data)
    }

    /// Sets a value, creating its key.
    pub fn set(&mut self, key: &str, name: &str, data: RegData) {
        let key = key.trim_matches('\\');
        let name_of_key = self.key_name(key).unwrap_or_else(|| key.to_owned());
        let values = self.0.entry(name_of_key).or_default();
        let existing = values.keys().find(|value| same(value, name)).cloned();
        values.insert(existing.unwrap_or_else(|| name.to_owned()), data);
    }

    /// Deletes a value (absent is fine).
    pub fn delete_value(&mut self, key: &str, name: &str) {
        if let Some(key) = self.key_name(key.trim_matches('\\'))
            && let Some(values) = self.0.get_mut(&key)
        {
            values.retain(|value, _| !same(value, name));
        }
    }

    /// Deletes a key and everything below it (absent is fine).
    pub fn delete_tree(&mut self, key: &str) {
        let lower = key.trim_matches('\\').to_ascii_lowercase();
        let prefix = format!("{lower}\\");
        self.0.retain(|name, _| {
            let name = name.to_ascii_lowercase();
            name != lower && !name.starts_with(&prefix)
        });
    }
}

/// A value the way `RegistryKey.GetValueKind` names its type and `ConvertTo-Json` writes what
/// `GetValue` returns: DWORDs and QWORDs as signed numbers (.NET hands out `Int32`/`Int64`),
/// multi-strings and binary data as arrays.
pub fn dotnet_value(data: &RegData) -> (&'static str, Value) {
    match data {
        RegData::Sz(text) => ("String", Value::from(text.as_str())),
        RegData::ExpandSz(text) => ("ExpandString", Value::from(text.as_str())),
        RegData::MultiSz(items) => ("MultiString", Value::from(items.clone())),
        RegData::Dword(number) => ("DWord", Value::from(*number as i32)),
        RegData::Qword(number) => ("QWord", Value::from(*number as i64)),
        RegData::Binary(bytes) => ("Binary", Value::from(bytes.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_ignore_case_and_parents_exist() {
        let mut hive = HiveKeys::default();
        hive.set(
            r"ControlSet001\Services\nvlddmkm",
            "Start",
            RegData::Dword(3),
        );
        hive.set(
            r"controlset001\services\NVLDDMKM",
            "start",
            RegData::Dword(4),
        );
        assert_eq!(hive.0.len(), 1);
        assert_eq!(
            hive.value(r"CONTROLSET001\Services\nvlddmkm", "START"),
            Some(&RegData::Dword(4))
        );
        assert!(hive.exists("ControlSet001"));
        assert!(hive.exists(""));
        assert!(!hive.exists("ControlSet00"));
        hive.delete_value(r"ControlSet001\Services\nvlddmkm", "Start");
        assert_eq!(
            hive.value(r"ControlSet001\Services\nvlddmkm", "Start"),
            None
        );
        assert!(hive.exists(r"ControlSet001\Services\nvlddmkm"));
        hive.delete_tree("controlset001");
        assert!(!hive.exists("ControlSet001"));
    }

    #[test]
    fn values_take_dotnet_shapes() {
        assert_eq!(
            dotnet_value(&RegData::Dword(0xFFFF_FFFF)),
            ("DWord", Value::from(-1))
        );
        assert_eq!(
            dotnet_value(&RegData::MultiSz(vec!["a".into()])),
            ("MultiString", serde_json::json!(["a"]))
        );
    }

    #[test]
    fn files_round_trip_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("SYSTEM");
        assert!(matches!(HiveKeys::read(&path), Err(HiveFileError::Missing)));
        fs_err::write(&path, b"regf\0\0\0\0").unwrap();
        assert!(matches!(
            HiveKeys::read(&path),
            Err(HiveFileError::NotAHive)
        ));
        let mut hive = HiveKeys::default();
        hive.set("Select", "Current", RegData::Dword(1));
        hive.write(&path).unwrap();
        assert_eq!(HiveKeys::read(&path).unwrap(), hive);
    }
}
