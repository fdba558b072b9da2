//! Next-item transitions: how often an item followed another in a user's sequence of
//! positive interactions. Updated online by every event, so the very next answer after an
//! event already follows from it. The user's own history is not kept here: the caller passes
//! the user's latest items (from the interaction store), newest first.

use std::collections::HashMap;

pub use crate::config::TransitionParams;

#[derive(Default, Clone)]
struct Successors {
    total: f32,
    next: Vec<(u32, f32)>,
}

/// Weighted item → next-item counts.
#[derive(Clone)]
pub struct Transitions {
    params: TransitionParams,
    from: HashMap<u32, Successors>,
}

impl Transitions {
    pub fn new(params: TransitionParams) -> Self {
        Self {
            params,
            from: HashMap::new(),
        }
    }

    /// Counts `item` as following each of `previous` (the user's earlier positive items,
    /// newest first).
    pub fn record(&mut self, previous: &[u32], item: u32) {
        let p = self.params;
        for (g, &prev) in previous.iter().take(p.window).enumerate() {
            if prev == item {
                continue;
            }
            let w = p.decay.powi(g as i32);
            let s = self.from.entry(prev).or_default();
            s.total += w;
            let full = s.next.len() >= p.max_successors.max(1);
            match s.next.iter_mut().find(|(i, _)| *i == item) {
                Some((_, c)) => *c += w,
                None if !full => s.next.push((item, w)),
                None => {
                    // Evict the weakest successor; its mass stays in `total`.
                    if let Some(weakest) = s.next.iter_mut().min_by(|a, b| a.1.total_cmp(&b.1)) {
                        if weakest.1 <= w {
                            *weakest = (item, w);
                        }
                    }
                }
            }
        }
    }

    /// Adds `P(next = i | recent[g]) * decay^g` for every successor `i` of the user's latest
    /// items (`recent`, newest first) into `out`.
    pub fn score_into(&self, recent: &[u32], out: &mut HashMap<u32, f32>) {
        for (g, prev) in recent.iter().take(self.params.window).enumerate() {
            let Some(s) = self.from.get(prev) else {
                continue;
            };
            let w = self.params.decay.powi(g as i32) / s.total.max(1e-9);
            for &(next, c) in &s.next {
                *out.entry(next).or_default() += w * c;
            }
        }
    }

    /// The item among `recent` that contributes most to `item`'s score (for the reason).
    pub fn strongest_source(&self, recent: &[u32], item: u32) -> Option<u32> {
        recent
            .iter()
            .take(self.params.window)
            .enumerate()
            .filter_map(|(g, prev)| {
                let s = self.from.get(prev)?;
                let c = s.next.iter().find(|(i, _)| *i == item)?.1;
                Some((
                    *prev,
                    self.params.decay.powi(g as i32) * c / s.total.max(1e-9),
                ))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(prev, _)| prev)
    }

    /// Drops every count into or out of `item` (deleted from the catalogue).
    pub fn remove_item(&mut self, item: u32) {
        self.from.remove(&item);
        for s in self.from.values_mut() {
            s.next.retain(|(i, _)| *i != item);
        }
    }

    /// Items with successors, and successor entries held.
    pub fn size(&self) -> (usize, usize) {
        (
            self.from.len(),
            self.from.values().map(|s| s.next.len()).sum(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_event_changes_the_next_scores() {
        let mut t = Transitions::new(TransitionParams::default());
        t.record(&[1], 2);
        t.record(&[1], 2);
        t.record(&[1], 3);
        let mut s = HashMap::new();
        t.score_into(&[1], &mut s);
        assert!(s[&2] > s[&3]);
        t.record(&[1], 3);
        t.record(&[1], 3);
        let mut s = HashMap::new();
        t.score_into(&[1], &mut s);
        assert!(s[&3] > s[&2]);
        assert_eq!(t.strongest_source(&[1], 3), Some(1));
    }

    #[test]
    fn older_items_count_less_and_the_window_is_respected() {
        let p = TransitionParams {
            window: 2,
            decay: 0.5,
            max_successors: 10,
        };
        let mut t = Transitions::new(p);
        t.record(&[1, 5, 9], 2); // 1 → 2 weight 1, 5 → 2 weight 0.5, 9 outside the window
        t.record(&[5], 3);
        let mut s = HashMap::new();
        t.score_into(&[9], &mut s);
        assert!(s.is_empty());
        let mut s = HashMap::new();
        t.score_into(&[5, 1], &mut s);
        // from 5: P(2) = 0.5/1.5, P(3) = 1/1.5; from 1 (one step back, x0.5): P(2) = 1
        assert!((s[&3] - 1.0 / 1.5).abs() < 1e-6);
        assert!((s[&2] - (0.5 / 1.5 + 0.5)).abs() < 1e-6);
    }

    #[test]
    fn successors_are_bounded() {
        let mut t = Transitions::new(TransitionParams {
            window: 1,
            decay: 1.0,
            max_successors: 3,
        });
        for next in 10..20 {
            t.record(&[1], next);
        }
        t.record(&[1], 42);
        t.record(&[1], 42);
        assert_eq!(t.size(), (1, 3));
        let mut s = HashMap::new();
        t.score_into(&[1], &mut s);
        assert!(s.contains_key(&42));
        t.remove_item(42);
        let mut s = HashMap::new();
        t.score_into(&[1], &mut s);
        assert!(!s.contains_key(&42));
    }
}
