//! An index that holds handles alone (slot numbers, sequence numbers) into a store
//! that keeps each entry's key: an entry costs its handle and a control byte, and
//! is hashed and compared through the key the store holds for it (`key_of`). Keys
//! are hashed with SipHash under random keys, as the standard maps do.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};

pub struct HandleIndex<H> {
    handles: hashbrown::HashTable<H>,
    hasher: RandomState,
}

impl<H> Default for HandleIndex<H> {
    fn default() -> Self {
        HandleIndex {
            handles: hashbrown::HashTable::new(),
            hasher: RandomState::new(),
        }
    }
}

impl<H: Copy + Eq> HandleIndex<H> {
    /// The handle whose key in the store is `key`.
    pub fn get<'s, K: Hash + Eq + 's>(&self, key: &K, key_of: impl Fn(H) -> Option<&'s K>) -> Option<H> {
        self.handles
            .find(self.hasher.hash_one(key), |&held| key_of(held) == Some(key))
            .copied()
    }

    /// Makes `handle` the one for its key in the store, in place of the handle that
    /// had that key.
    pub fn set<'s, K: Hash + Eq + 's>(&mut self, handle: H, key_of: impl Fn(H) -> Option<&'s K>) {
        let Some(key) = key_of(handle) else {
            return;
        };
        let hash = self.hasher.hash_one(key);
        if let Some(held) = self.handles.find_mut(hash, |&held| key_of(held) == Some(key)) {
            *held = handle;
            return;
        }
        let hasher = &self.hasher;
        self.handles
            .insert_unique(hash, handle, |&held| key_of(held).map_or(0, |k| hasher.hash_one(k)));
    }

    /// Takes out the handle whose key in the store is `key`.
    pub fn take<'s, K: Hash + Eq + 's>(&mut self, key: &K, key_of: impl Fn(H) -> Option<&'s K>) -> Option<H> {
        let entry = self
            .handles
            .find_entry(self.hasher.hash_one(key), |&held| key_of(held) == Some(key))
            .ok()?;
        Some(entry.remove().0)
    }

    /// Takes out `handle`, held under `key`, if it is there.
    pub fn forget<K: Hash + ?Sized>(&mut self, key: &K, handle: H) {
        if let Ok(entry) = self
            .handles
            .find_entry(self.hasher.hash_one(key), |&held| held == handle)
        {
            entry.remove();
        }
    }

    /// Gives back room past twice what is held.
    pub fn shrink<'s, K: Hash + 's>(&mut self, key_of: impl Fn(H) -> Option<&'s K>) {
        let hasher = &self.hasher;
        self.handles.shrink_to(self.handles.len() * 2, |&held| {
            key_of(held).map_or(0, |k| hasher.hash_one(k))
        });
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn capacity(&self) -> usize {
        self.handles.capacity()
    }

    /// Bytes its table takes.
    pub fn memory(&self) -> usize {
        self.handles.allocation_size()
    }
}
