//! The database: a set of named collections.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::Error;
use crate::collection::Collection;
use crate::config::CollectionConfig;

/// A Braid database. `Send + Sync`; clone the handle to share it.
#[derive(Clone, Default)]
pub struct Database {
    collections: Arc<RwLock<BTreeMap<String, Collection>>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("collections", &self.list()).finish()
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok { Ok(()) } else { Err(Error::InvalidName { name: name.to_string() }) }
}

impl Database {
    /// A database held in memory: everything is gone when it is dropped. (Durable
    /// storage, `Database::open(path)`, arrives with `braid-storage`.)
    pub fn in_memory() -> Database {
        Database::default()
    }

    /// Creates a collection; a name already taken is [`Error::CollectionConflict`].
    pub fn create_collection(&self, name: &str, config: CollectionConfig) -> Result<Collection, Error> {
        check_name(name)?;
        config.validate()?;
        let mut all = self.collections.write();
        if all.contains_key(name) {
            return Err(Error::CollectionConflict { name: name.to_string() });
        }
        let collection = Collection::new(name, config)?;
        all.insert(name.to_string(), collection.clone());
        Ok(collection)
    }

    /// The collection `name`, created with `config` if it does not exist. Asking again
    /// with the same configuration returns the same collection; with another one it is
    /// [`Error::CollectionConflict`], never a silent overwrite.
    pub fn get_or_create(&self, name: &str, config: CollectionConfig) -> Result<Collection, Error> {
        check_name(name)?;
        config.validate()?;
        let mut all = self.collections.write();
        if let Some(existing) = all.get(name) {
            return if existing.config() == config {
                Ok(existing.clone())
            } else {
                Err(Error::CollectionConflict { name: name.to_string() })
            };
        }
        let collection = Collection::new(name, config)?;
        all.insert(name.to_string(), collection.clone());
        Ok(collection)
    }

    /// The collection `name`.
    pub fn collection(&self, name: &str) -> Result<Collection, Error> {
        self.collections
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::CollectionNotFound { name: name.to_string() })
    }

    /// Does `name` exist?
    pub fn collection_exists(&self, name: &str) -> bool {
        self.collections.read().contains_key(name)
    }

    /// Every collection name, sorted.
    pub fn list(&self) -> Vec<String> {
        self.collections.read().keys().cloned().collect()
    }

    /// Deletes `name`; `true` if it existed. Handles held elsewhere keep working on the
    /// detached data until dropped.
    pub fn delete_collection(&self, name: &str) -> bool {
        self.collections.write().remove(name).is_some()
    }
}
