//! Small named settings and flags of the desk behind [`SettingsRepository`]: the saved sections of
//! the desk settings, the identity sites, that the starter quick replies were seeded, the
//! self-service figures. [`StoredSettings`] keeps each as one JSON document under its name in the
//! `meta` table (the names and documents are those stored since they were introduced).
//!
//! The trait speaks JSON text so that it stays object-safe; the typed `get`, `put` and `update` on
//! `dyn SettingsRepository` encode and decode exactly as the records always were.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::storage::Store;

/// Where the named settings live.
pub trait SettingsRepository: Send + Sync + std::fmt::Debug {
    /// The JSON document stored under `name`.
    fn document(&self, name: &str) -> Result<Option<String>>;
    /// Stores `json` under `name` (insert or replace).
    fn put_document(&self, name: &str, json: &str) -> Result<()>;
    /// Removes the document under `name`.
    fn remove_document(&self, name: &str) -> Result<()>;
    /// Replaces the document under `name` with `change(current)` atomically (`None`: absent) and
    /// returns what was stored. `change` may run more than once when another writer got there first,
    /// so it must only compute.
    fn update_document(
        &self,
        name: &str,
        change: &mut dyn FnMut(Option<&str>) -> Option<String>,
    ) -> Result<Option<String>>;
}

impl dyn SettingsRepository + '_ {
    /// The setting under `name`, decoded.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        self.document(name)?
            .map(|json| crate::storage::decode(json.as_bytes()))
            .transpose()
    }

    /// Stores `value` under `name`.
    pub fn put<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        self.put_document(name, &encode_text(value)?)
    }

    /// Changes the setting under `name` in place, atomically: `change` runs on the stored value (or
    /// the default) and may run more than once, so it must only change its argument. A stored value
    /// that does not decode stays as it is, and the error comes back. Returns the value as stored.
    pub fn update<T: Serialize + DeserializeOwned + Default>(
        &self,
        name: &str,
        mut change: impl FnMut(&mut T),
    ) -> Result<T> {
        let mut failure = None;
        let stored = self.update_document(name, &mut |old| {
            failure = None;
            let mut value = match old.map(|json| crate::storage::decode::<T>(json.as_bytes())) {
                None => T::default(),
                Some(Ok(value)) => value,
                Some(Err(error)) => {
                    failure = Some(error);
                    return old.map(str::to_string);
                }
            };
            change(&mut value);
            match encode_text(&value) {
                Ok(json) => Some(json),
                Err(error) => {
                    failure = Some(error);
                    old.map(str::to_string)
                }
            }
        })?;
        if let Some(error) = failure {
            return Err(error);
        }
        stored.map_or_else(
            || Ok(T::default()),
            |json| crate::storage::decode(json.as_bytes()),
        )
    }
}

fn encode_text<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|error| Error::Storage(format!("encoding a record: {error}")))
}

fn text(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes)
        .map_err(|_| Error::Storage("a stored setting is not UTF-8 JSON".into()))
}

/// [`SettingsRepository`] in the store's `meta` table.
#[derive(Debug, Clone)]
pub struct StoredSettings {
    store: Store,
}

impl StoredSettings {
    /// Settings in `store`.
    pub fn new(store: &Store) -> StoredSettings {
        StoredSettings {
            store: store.clone(),
        }
    }
}

impl SettingsRepository for StoredSettings {
    fn document(&self, name: &str) -> Result<Option<String>> {
        self.store.meta.get(name)?.map(text).transpose()
    }

    fn put_document(&self, name: &str, json: &str) -> Result<()> {
        self.store.meta.insert(name, json)
    }

    fn remove_document(&self, name: &str) -> Result<()> {
        self.store.meta.remove(name)?;
        Ok(())
    }

    fn update_document(
        &self,
        name: &str,
        change: &mut dyn FnMut(Option<&str>) -> Option<String>,
    ) -> Result<Option<String>> {
        self.store
            .meta
            .update_and_fetch(name, |old| {
                // Bytes that are not text (never written through this repository) read as empty text,
                // which no setting decodes from.
                let old = old.map(|bytes| std::str::from_utf8(bytes).unwrap_or_default());
                change(old).map(String::into_bytes)
            })?
            .map(text)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn settings_round_trip_and_update_atomically() {
        let store = Store::temporary().unwrap();
        let settings: Arc<dyn SettingsRepository> = Arc::new(StoredSettings::new(&store));
        assert_eq!(settings.get::<u64>("count").unwrap(), None);
        settings.put("flag", &1).unwrap();
        assert_eq!(settings.document("flag").unwrap().as_deref(), Some("1"));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        settings
                            .update("count", |count: &mut u64| *count += 1)
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(settings.get::<u64>("count").unwrap(), Some(200));
        settings.remove_document("flag").unwrap();
        assert!(settings.document("flag").unwrap().is_none());
    }

    #[test]
    fn an_undecodable_setting_is_left_as_it_is_and_reported() {
        let store = Store::temporary().unwrap();
        let settings: Arc<dyn SettingsRepository> = Arc::new(StoredSettings::new(&store));
        settings.put_document("count", "\"many\"").unwrap();
        assert!(settings
            .update("count", |count: &mut u64| *count += 1)
            .is_err());
        assert_eq!(
            settings.document("count").unwrap().as_deref(),
            Some("\"many\"")
        );
    }
}
