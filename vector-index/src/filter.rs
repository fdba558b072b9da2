//! Payload filters evaluated inside the search, not after it.
//!
//! Items carry labels ("genre:drama", "lang:en", "maturity:pg-13"); a [`Filter`] is a
//! conjunction of clauses over them (any of these labels, none of those). A frozen graph
//! keeps one bitmap per label over its nodes, so a filter becomes the set of admitted nodes
//! with a few word-wide AND/OR passes, and its size is known before searching. The search
//! then picks its strategy from that size (see [`FrozenGraph::search_in`]): a graph walk that
//! only lets admitted nodes into the results, or an exact scan of the admitted nodes when
//! they are too few for the walk to find them quickly. Either way the answer holds the
//! nearest admitted items, not popular ones that happen to pass.
//!
//! [`FrozenGraph::search_in`]: crate::FrozenGraph::search_in

use std::collections::HashMap;
use std::sync::Arc;

/// One clause of a [`Filter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// The item carries at least one of these labels.
    AnyOf(Vec<Arc<str>>),
    /// The item carries none of these labels.
    NoneOf(Vec<Arc<str>>),
}

/// A conjunction of clauses over item labels; the default admits everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    clauses: Vec<Clause>,
}

impl Filter {
    /// Adds a clause: the item must carry one of `labels`.
    pub fn any_of<I: IntoIterator<Item = S>, S: Into<Arc<str>>>(mut self, labels: I) -> Self {
        self.clauses
            .push(Clause::AnyOf(labels.into_iter().map(Into::into).collect()));
        self
    }

    /// Adds a clause: the item must carry none of `labels`.
    pub fn none_of<I: IntoIterator<Item = S>, S: Into<Arc<str>>>(mut self, labels: I) -> Self {
        let labels: Vec<Arc<str>> = labels.into_iter().map(Into::into).collect();
        if !labels.is_empty() {
            self.clauses.push(Clause::NoneOf(labels));
        }
        self
    }

    pub fn from_clauses(clauses: Vec<Clause>) -> Self {
        Self { clauses }
    }

    pub fn clauses(&self) -> &[Clause] {
        &self.clauses
    }

    /// True when the filter admits every item.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Whether an item carrying `labels` passes.
    pub fn admits(&self, labels: &[Arc<str>]) -> bool {
        self.clauses.iter().all(|c| match c {
            Clause::AnyOf(wanted) => labels.iter().any(|l| wanted.contains(l)),
            Clause::NoneOf(banned) => !labels.iter().any(|l| banned.contains(l)),
        })
    }
}

/// A set of node numbers below a fixed length, one bit each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSet {
    words: Vec<u64>,
    len: usize,
}

impl NodeSet {
    pub fn empty(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    pub fn full(len: usize) -> Self {
        let mut set = Self {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
        };
        if !len.is_multiple_of(64) {
            if let Some(last) = set.words.last_mut() {
                *last = (1u64 << (len % 64)) - 1;
            }
        }
        set
    }

    pub fn from_nodes(len: usize, nodes: impl IntoIterator<Item = u32>) -> Self {
        let mut set = Self::empty(len);
        for n in nodes {
            set.insert(n);
        }
        set
    }

    pub fn insert(&mut self, node: u32) {
        let n = node as usize;
        assert!(n < self.len, "node {n} outside a set of {}", self.len);
        self.words[n / 64] |= 1 << (n % 64);
    }

    #[inline]
    pub fn contains(&self, node: u32) -> bool {
        let n = node as usize;
        n < self.len && self.words[n / 64] & (1 << (n % 64)) != 0
    }

    /// Number of nodes in the set.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The universe size: nodes `0..len` may be members.
    pub fn universe(&self) -> usize {
        self.len
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut rest = w;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros();
                    rest &= rest - 1;
                    (i * 64) as u32 + bit
                })
            })
        })
    }

    fn and(&mut self, other: &NodeSet) {
        self.words
            .iter_mut()
            .zip(&other.words)
            .for_each(|(a, b)| *a &= b);
    }

    fn and_not(&mut self, other: &NodeSet) {
        self.words
            .iter_mut()
            .zip(&other.words)
            .for_each(|(a, b)| *a &= !b);
    }

    fn or(&mut self, other: &NodeSet) {
        self.words
            .iter_mut()
            .zip(&other.words)
            .for_each(|(a, b)| *a |= b);
    }
}

/// One bitmap per label over the nodes of a frozen graph.
#[derive(Debug, Clone)]
pub struct LabelIndex {
    len: usize,
    bitmaps: HashMap<Arc<str>, NodeSet>,
}

impl LabelIndex {
    /// Indexes the labels of nodes `0..labels.len()`.
    pub fn new(labels: &[Box<[Arc<str>]>]) -> Self {
        let len = labels.len();
        let mut bitmaps: HashMap<Arc<str>, NodeSet> = HashMap::new();
        for (node, node_labels) in labels.iter().enumerate() {
            for label in node_labels.iter() {
                bitmaps
                    .entry(label.clone())
                    .or_insert_with(|| NodeSet::empty(len))
                    .insert(node as u32);
            }
        }
        Self { len, bitmaps }
    }

    /// The nodes `filter` admits.
    pub fn admitted(&self, filter: &Filter) -> NodeSet {
        let mut set = NodeSet::full(self.len);
        for clause in filter.clauses() {
            match clause {
                Clause::AnyOf(wanted) => {
                    let mut any = NodeSet::empty(self.len);
                    for label in wanted {
                        if let Some(b) = self.bitmaps.get(label) {
                            any.or(b);
                        }
                    }
                    set.and(&any);
                }
                Clause::NoneOf(banned) => {
                    for label in banned {
                        if let Some(b) = self.bitmaps.get(label) {
                            set.and_not(b);
                        }
                    }
                }
            }
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ls: &[&str]) -> Box<[Arc<str>]> {
        ls.iter().map(|&l| Arc::from(l)).collect()
    }

    #[test]
    fn clauses_combine_as_a_conjunction_of_any_and_none() {
        let nodes = vec![
            labels(&["genre:noir", "lang:en"]),
            labels(&["genre:drama", "lang:en"]),
            labels(&["genre:noir", "genre:drama", "lang:fr"]),
            labels(&[]),
        ];
        let index = LabelIndex::new(&nodes);
        let noir_or_drama_not_fr = Filter::default()
            .any_of(["genre:noir", "genre:drama"])
            .none_of(["lang:fr"]);
        let set = index.admitted(&noir_or_drama_not_fr);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(set.count(), 2);
        for (n, l) in nodes.iter().enumerate() {
            assert_eq!(noir_or_drama_not_fr.admits(l), set.contains(n as u32));
        }
        // An unknown label admits nothing in AnyOf and bans nothing in NoneOf.
        assert_eq!(index.admitted(&Filter::default().any_of(["x"])).count(), 0);
        assert_eq!(index.admitted(&Filter::default().none_of(["x"])).count(), 4);
        assert_eq!(index.admitted(&Filter::default()).count(), 4);
    }

    #[test]
    fn node_sets_handle_partial_words() {
        for len in [0usize, 1, 63, 64, 65, 130] {
            let full = NodeSet::full(len);
            assert_eq!(full.count(), len);
            assert_eq!(full.iter().count(), len);
            assert!(!full.contains(len as u32));
        }
        let set = NodeSet::from_nodes(200, [3, 64, 199]);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![3, 64, 199]);
    }
}
