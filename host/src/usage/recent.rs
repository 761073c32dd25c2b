//! A bounded memory of the most recent keys (ids an agent may repeat), so a reader that
//! dedups by id keeps a fixed size however long the session runs.

use std::collections::{HashMap, VecDeque};

/// The `cap` most recently inserted keys, each with a value; the oldest key is forgotten
/// when a new one would exceed `cap`.
#[derive(Debug)]
pub(crate) struct Recent<V> {
    cap: usize,
    order: VecDeque<String>,
    map: HashMap<String, V>,
    evicted: bool,
}

impl<V> Recent<V> {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            order: VecDeque::new(),
            map: HashMap::new(),
            evicted: false,
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Insert or replace `key`'s value; the previous value when the key was known. A
    /// replaced key keeps its age (ids are remembered from their first sighting).
    pub(crate) fn insert(&mut self, key: &str, value: V) -> Option<V> {
        if let Some(slot) = self.map.get_mut(key) {
            return Some(std::mem::replace(slot, value));
        }
        if self.order.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
            self.evicted = true;
        }
        self.order.push_back(key.to_owned());
        self.map.insert(key.to_owned(), value);
        None
    }

    /// Whether any key was ever forgotten to respect the bound.
    pub(crate) fn has_evicted(&self) -> bool {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recent_keys() {
        let mut r = Recent::new(2);
        assert_eq!(r.insert("a", 1), None);
        assert_eq!(r.insert("b", 2), None);
        assert_eq!(r.insert("a", 3), Some(1));
        assert!(!r.has_evicted());
        assert_eq!(r.insert("c", 4), None);
        assert!(r.has_evicted());
        assert!(!r.contains("a"));
        assert_eq!(r.get("b"), Some(&2));
        assert_eq!(r.get("c"), Some(&4));
    }
}
