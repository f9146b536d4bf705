//! An ordered map that stays a sorted vector while it is small, with its first entry kept
//! inline: most files have one holder under one name, and a one-entry `BTreeMap` allocates a
//! whole node (11 slots, about 560 bytes for a peer id and a name), which made the index cost
//! about 1.5 KiB a listed file (benches/tracker_load.rs); a one-entry `Vec` still costs an
//! allocation. Past `FEW` entries it becomes a `BTreeMap`, so a file with a hundred thousand
//! holders still inserts and removes in O(log n).

use std::borrow::Borrow;
use std::collections::BTreeMap;

use smallvec::SmallVec;

/// An ordered map, a sorted vector (its first entry inline) while it has at most `FEW`
/// entries.
#[derive(Clone, Debug)]
pub(super) enum SmallMap<K, V, const FEW: usize = 8> {
    Few(SmallVec<[(K, V); 1]>),
    Many(BTreeMap<K, V>),
}

impl<K: Ord, V, const FEW: usize> Default for SmallMap<K, V, FEW> {
    fn default() -> Self {
        SmallMap::Few(SmallVec::new())
    }
}

impl<K: Ord, V, const FEW: usize> SmallMap<K, V, FEW> {
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
                    // Grow by one, not to the usual double: most maps here hold one or a few entries.
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

    /// The value of `key`.
    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        match self {
            SmallMap::Few(v) => v.binary_search_by(|(k, _)| k.borrow().cmp(key)).ok().map(|i| &v[i].1),
            SmallMap::Many(m) => m.get(key),
        }
    }

    /// The entries, in order of key.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + Clone {
        let (few, many) = match self {
            SmallMap::Few(v) => (Some(v.iter().map(|(k, v)| (k, v))), None),
            SmallMap::Many(m) => (None, Some(m.iter())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> + Clone {
        self.iter().map(|(k, _)| k)
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
            assert_eq!(small.get(key.as_str()).copied(), model.get(&key).copied());
        }
        assert!(matches!(small, SmallMap::Many(_)), "more than a few entries make a tree");
    }
}
