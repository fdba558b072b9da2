//! The reasoning the ontology needs, done once at load: the reflexive-transitive subclass
//! closure (which also makes `SubClassOf` cycles and `EquivalentClasses` equivalent) and the
//! inherited disjointness, both as bitsets so later queries are bit tests.

/// `subs[c]`: c and all its subclasses, transitively, given each class's direct superclasses.
///
/// Walks up from every class, marking it in the `subs` of each ancestor. The visited set
/// makes SubClassOf cycles terminate (their members end up in each other's `subs`, i.e.
/// equivalent).
pub(super) fn subclass_closure(supers: &[Vec<usize>]) -> Vec<BitSet> {
    let n = supers.len();
    let mut subs = vec![BitSet::new(n); n];
    let mut seen = BitSet::new(n);
    let mut stack = Vec::new();
    for c in 0..n {
        seen.clear();
        stack.push(c);
        while let Some(x) = stack.pop() {
            if seen.insert(x) {
                subs[x].insert(c);
                stack.extend(supers[x].iter().copied().filter(|&s| !seen.contains(s)));
            }
        }
    }
    subs
}

/// `disjoint[c]`: every class disjoint with c. Each pair of members of a `DisjointClasses`
/// axiom (`disjoint_sets`) is disjoint, and so are all their subclasses.
pub(super) fn inherited_disjointness(subs: &[BitSet], disjoint_sets: &[Vec<usize>]) -> Vec<BitSet> {
    let n = subs.len();
    let mut disjoint = vec![BitSet::new(n); n];
    for set in disjoint_sets {
        for (i, &a) in set.iter().enumerate() {
            for &b in &set[i + 1..] {
                for x in subs[a].iter() {
                    disjoint[x].union_with(&subs[b]);
                }
                for y in subs[b].iter() {
                    disjoint[y].union_with(&subs[a]);
                }
            }
        }
    }
    disjoint
}

/// The first class disjoint with itself (unsatisfiable), with the two disjoint classes it
/// falls under: `(class, a, b)`. `None` when every class is satisfiable.
pub(super) fn unsatisfiable(
    subs: &[BitSet],
    disjoint: &[BitSet],
    disjoint_sets: &[Vec<usize>],
) -> Option<(usize, usize, usize)> {
    let c = (0..disjoint.len()).find(|&c| disjoint[c].contains(c))?;
    let (a, b) = disjoint_sets
        .iter()
        .flat_map(|set| {
            set.iter()
                .flat_map(move |&a| set.iter().map(move |&b| (a, b)))
                .filter(|(a, b)| a != b)
        })
        .find(|&(a, b)| subs[a].contains(c) && subs[b].contains(c))
        // A class in a DisjointClasses axiom with itself (or an equivalent class).
        .unwrap_or((c, c));
    Some((c, a, b))
}

/// A fixed-size set of class indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BitSet(Box<[u64]>);

impl BitSet {
    pub(super) fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)].into_boxed_slice())
    }

    pub(super) fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Adds `i`; true if it was not there.
    pub(super) fn insert(&mut self, i: usize) -> bool {
        let word = &mut self.0[i / 64];
        let bit = 1 << (i % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }

    pub(super) fn clear(&mut self) {
        self.0.fill(0);
    }

    pub(super) fn union_with(&mut self, other: &BitSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}
