//! An ordered map that stays a sorted vector while it is small: most files have one holder
//! under one name, and a one-entry `BTreeMap` allocates a whole node (11 slots, about 560
//! bytes for a peer id and a name), which made the index cost about 1.5 KiB a listed file
//! (benches/tracker_load.rs). Past [`FEW`] entries it becomes a `BTreeMap`, so a file with a
//! hundred thousand holders still inserts and removes in O(log n).

use std::borrow::Borrow;
use std::collections::BTreeMap;

/// Entries kept in a sorted vector before moving to a tree.
const FEW: usize = 8;

/// An ordered map, a sorted vector while small.
#[derive(Clone, Debug)]
pub(super) enum SmallMap<K, V> {
    Few(Vec<(K, V)>),
    Many(BTreeMap<K, V>),
}

impl<K: Ord, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::Few(Vec::new())
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    /// Entries.
    pub fn len(&self) -> usize {
        match self {
            SmallMap::Few(v) => v.len(),
            SmallMap::Many(m) => m.len(),
        }
    }

    /// Whether it has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `key`, to change.
    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        match self {
            SmallMap::Few(v) => v.binary_search_by(|(k, _)| k.borrow().cmp(key)).ok().map(|i| &mut v[i].1),
            SmallMap::Many(m) => m.get_mut(key),
        }
    }

    /// Whether `key` has an entry.
    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        match self {
            SmallMap::Few(v) => v.binary_search_by(|(k, _)| k.borrow().cmp(key)).is_ok(),
            SmallMap::Many(m) => m.contains_key(key),
        }
    }

    /// Sets `key` to `value`; returns the value it had.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self {
            SmallMap::Few(v) => match v.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(i) => Some(std::mem::replace(&mut v[i].1, value)),
                Err(i) if v.len() < FEW => {
                    // Grow by one, not to Vec's usual four: most maps here hold one entry.
                    v.reserve_exact(1);
                    v.insert(i, (key, value));
                    None
                }
                Err(_) => {
                    let mut tree: BTreeMap<K, V> = std::mem::take(v).into_iter().collect();
                    tree.insert(key, value);
                    *self = SmallMap::Many(tree);
                    None
                }
            },
            SmallMap::Many(m) => m.insert(key, value),
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        match self {
            SmallMap::Few(v) => v.binary_search_by(|(k, _)| k.borrow().cmp(key)).ok().map(|i| v.remove(i).1),
            SmallMap::Many(m) => m.remove(key),
        }
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> + Clone {
        let (few, many) = match self {
            SmallMap::Few(v) => (Some(v.iter().map(|(k, _)| k)), None),
            SmallMap::Many(m) => (None, Some(m.keys())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_behaves_as_an_ordered_map_small_and_big() {
        let mut small: SmallMap<String, u32> = SmallMap::default();
        let mut model = BTreeMap::new();
        for step in 0..400u32 {
            let key = format!("k{}", (step * 37) % 23);
            if step % 3 == 2 {
                assert_eq!(small.remove(key.as_str()), model.remove(&key));
            } else {
                assert_eq!(small.insert(key.clone(), step), model.insert(key.clone(), step));
            }
            assert_eq!(small.len(), model.len());
            assert!(small.keys().eq(model.keys()), "keys in order");
            assert_eq!(small.contains_key(key.as_str()), model.contains_key(&key));
            assert_eq!(small.get_mut(key.as_str()).copied(), model.get(&key).copied());
        }
        assert!(matches!(small, SmallMap::Many(_)), "more than a few entries make a tree");
    }
}
