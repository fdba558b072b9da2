//! Saving and restoring the learned state, so a restart keeps what the policy has learned;
//! a state written for another feature set is refused rather than misread.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Policy, SegmentModel, FEATURES, FEATURE_NAMES};

#[derive(Debug, Serialize, Deserialize)]
struct PersistedState {
    features: Vec<String>,
    segments: HashMap<String, SegmentModel>,
}

impl Policy {
    /// The learned state as JSON (what [`Policy::save`] writes and a cluster keeps in
    /// ScyllaDB).
    pub fn state_json(&self) -> std::io::Result<Vec<u8>> {
        let state = PersistedState {
            features: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            segments: self.segments.read().expect("policy lock").clone(),
        };
        serde_json::to_vec(&state).map_err(std::io::Error::other)
    }

    /// Writes the state atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = self.state_json()?;
        // One writer at a time (periodic saves and the one at shutdown may overlap); the
        // rename is made durable by syncing the directory that holds the file.
        let _one_writer = self
            .saving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
    }

    /// Restores a state written by [`Policy::save`]; a missing file leaves the prior.
    pub fn restore(&self, path: &Path) -> std::io::Result<bool> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        self.restore_json(&bytes)?;
        Ok(true)
    }

    /// Restores a state from [`Policy::state_json`]; one for other features is refused.
    pub fn restore_json(&self, bytes: &[u8]) -> std::io::Result<()> {
        let state: PersistedState = serde_json::from_slice(bytes).map_err(std::io::Error::other)?;
        let valid = state.features == FEATURE_NAMES
            && state.segments.values().all(|m| {
                m.a.len() == FEATURES * FEATURES
                    && m.b.len() == FEATURES
                    && m.theta.len() == FEATURES
            });
        if !valid {
            return Err(std::io::Error::other(
                "policy state was written for other features",
            ));
        }
        *self.segments.write().expect("policy lock") = state.segments;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::tests::{settings, Sim, STATIC};
    use crate::policy::Policy;

    #[test]
    fn state_persists_and_restores_exactly() {
        let policy = Policy::new(settings(0.1), STATIC, 9);
        let mut sim = Sim(4);
        for i in 0..500 {
            let c = sim.candidates();
            let segment = if i % 2 == 0 {
                "device:mobile"
            } else {
                "global"
            };
            policy.update(segment, &c[i % 5], (i % 3) as f32 - 1.0);
        }
        let dir = std::env::temp_dir().join(format!("policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.json");
        policy.save(&path).unwrap();
        let restored = Policy::new(settings(0.1), STATIC, 9);
        assert!(restored.restore(&path).unwrap());
        for segment in ["device:mobile", "global", "never-seen"] {
            assert_eq!(restored.weights(segment), policy.weights(segment));
        }
        assert_eq!(
            *restored.segments.read().unwrap(),
            *policy.segments.read().unwrap()
        );
        assert!(!Policy::new(settings(0.1), STATIC, 9)
            .restore(&dir.join("missing.json"))
            .unwrap());
        std::fs::write(&path, b"{\"features\":[\"x\"],\"segments\":{}}").unwrap();
        assert!(
            restored.restore(&path).is_err(),
            "other features are refused"
        );
    }

    #[test]
    fn concurrent_saves_leave_a_readable_state() {
        let policy = std::sync::Arc::new(Policy::new(settings(0.1), STATIC, 9));
        let mut sim = Sim(4);
        for i in 0..200 {
            let c = sim.candidates();
            policy.update(&format!("segment-{}", i % 20), &c[i % 5], 1.0);
        }
        let dir = std::env::temp_dir().join(format!("policy-saves-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.json");
        let savers: Vec<_> = (0..8)
            .map(|_| {
                let (policy, path) = (policy.clone(), path.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        policy.save(&path).unwrap();
                    }
                })
            })
            .collect();
        for saver in savers {
            saver.join().unwrap();
        }
        let restored = Policy::new(settings(0.1), STATIC, 9);
        assert!(restored.restore(&path).unwrap());
        assert_eq!(
            *restored.segments.read().unwrap(),
            *policy.segments.read().unwrap()
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
