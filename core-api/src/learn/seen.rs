//! Everything each user has interacted with, as sorted item ordinals, so the ranking never
//! recommends an item the user already knows however long ago they met it. Derived from the
//! interaction store (replayed at start) and kept current by every event.

use std::collections::HashMap;

/// Per-user sets of item ordinals. A sorted `Vec<u32>` per user costs 4 bytes per distinct
/// item plus one map entry per user, and answers membership by binary search.
#[derive(Default)]
pub struct SeenSets {
    users: HashMap<Box<str>, Vec<u32>>,
    items: usize,
}

impl SeenSets {
    /// Marks `item` as seen by `user`.
    pub fn insert(&mut self, user: &str, item: u32) {
        let set = match self.users.get_mut(user) {
            Some(set) => set,
            None => self.users.entry(user.into()).or_default(),
        };
        if let Err(at) = set.binary_search(&item) {
            set.insert(at, item);
            self.items += 1;
        }
    }

    pub fn contains(&self, user: &str, item: u32) -> bool {
        self.users
            .get(user)
            .is_some_and(|set| set.binary_search(&item).is_ok())
    }

    /// The user's seen items, sorted (empty for an unknown user).
    pub fn of(&self, user: &str) -> &[u32] {
        self.users.get(user).map_or(&[], Vec::as_slice)
    }

    /// Forgets a user entirely.
    pub fn remove_user(&mut self, user: &str) {
        if let Some(set) = self.users.remove(user) {
            self.items -= set.len();
        }
    }

    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Distinct (user, item) pairs held.
    pub fn pairs(&self) -> usize {
        self.items
    }

    /// Heap bytes held (sets at their capacity, keys, and the map's slots), for the
    /// memory figures in the benchmarks.
    pub fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Box<str>, Vec<u32>)>() + 1;
        self.users.capacity() * slot
            + self
                .users
                .iter()
                .map(|(k, v)| k.len() + v.capacity() * 4)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_every_item_of_a_long_history() {
        let mut seen = SeenSets::default();
        for i in (0..2_000u32).rev() {
            seen.insert("u", i * 3);
            seen.insert("u", i * 3); // duplicates are stored once
        }
        assert_eq!(seen.pairs(), 2_000);
        assert!((0..2_000u32).all(|i| seen.contains("u", i * 3)));
        assert!(!seen.contains("u", 1));
        assert!(!seen.contains("v", 0));
        assert!(seen.of("u").windows(2).all(|w| w[0] < w[1]));
        seen.remove_user("u");
        assert_eq!((seen.pairs(), seen.users()), (0, 0));
    }
}
