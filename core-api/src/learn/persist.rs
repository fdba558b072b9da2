//! Trained models on disk: one file per version (`model-<version>.bin`), written to a
//! temporary file, fsynced, renamed into place and the directory fsynced, so a crash leaves
//! either the old or the new model, never half of one. Each file carries the item ids of
//! its ordinals, so a model trained by another process (`reco-train`) maps onto this
//! process's ordinals when loaded.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::collab::ItemNeighbours;
use super::ranker::Ranker;
use super::train::TrainReport;
use super::{ItemIds, TrainedModel};

const MAGIC: &[u8; 8] = b"SEMRECM1";

#[derive(Serialize, Deserialize)]
struct Header {
    version: u64,
    trained_at: i64,
    ranker: Option<Ranker>,
    report: TrainReport,
}

fn path_of(dir: &Path, version: u64) -> PathBuf {
    dir.join(format!("model-{version:020}.bin"))
}

/// Writes `model` (whose ordinals are `ids`) atomically into `dir` and keeps the newest
/// `keep` versions. Returns the file written.
pub fn save(
    dir: &Path,
    model: &TrainedModel,
    ids: &[Arc<str>],
    keep: usize,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let header = serde_json::to_vec(&Header {
        version: model.version,
        trained_at: model.trained_at,
        ranker: model.ranker.clone(),
        report: model.report.clone(),
    })
    .map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(64 + header.len() + model.collab.heap_bytes());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    for id in ids {
        bytes.extend_from_slice(&(id.len() as u16).to_le_bytes());
        bytes.extend_from_slice(id.as_bytes());
    }
    model.collab.write_to(&mut bytes);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());

    let path = path_of(dir, model.version);
    // The process id keeps two writers (a core and `reco-train`) off each other's file.
    let tmp = dir.join(format!(
        ".model-{}-{}.tmp",
        model.version,
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    let mut versions = versions(dir)?;
    versions.sort_unstable_by(|a, b| b.cmp(a));
    for old in versions.into_iter().skip(keep.max(1)) {
        let _ = std::fs::remove_file(path_of(dir, old));
    }
    Ok(path)
}

/// Versions present in `dir`.
pub fn versions(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(v) = name
            .strip_prefix("model-")
            .and_then(|n| n.strip_suffix(".bin"))
            .and_then(|n| n.parse().ok())
        {
            out.push(v);
        }
    }
    Ok(out)
}

/// Reads one model file, mapping its ordinals onto `ids` (interning unknown ids).
pub fn load(path: &Path, ids: &mut ItemIds) -> Result<TrainedModel, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |what: &str| format!("{}: {what}", path.display());
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(bad("not a model file"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(bad("checksum mismatch"));
    }
    let mut at = 8;
    let take = |at: &mut usize, n: usize| -> Result<&[u8], String> {
        let s = body.get(*at..*at + n).ok_or_else(|| bad("truncated"))?;
        *at += n;
        Ok(s)
    };
    let header_len = u32::from_le_bytes(take(&mut at, 4)?.try_into().expect("4")) as usize;
    let header: Header =
        serde_json::from_slice(take(&mut at, header_len)?).map_err(|e| bad(&e.to_string()))?;
    let n_ids = u64::from_le_bytes(take(&mut at, 8)?.try_into().expect("8")) as usize;
    let mut map = Vec::with_capacity(n_ids.min(body.len()));
    for _ in 0..n_ids {
        let len = u16::from_le_bytes(take(&mut at, 2)?.try_into().expect("2")) as usize;
        let id = std::str::from_utf8(take(&mut at, len)?).map_err(|_| bad("id not UTF-8"))?;
        map.push(ids.intern(&Arc::from(id)));
    }
    let (collab, used) = ItemNeighbours::read_from(&body[at..]).map_err(|e| bad(&e))?;
    if at + used != body.len() || collab.len() > map.len() {
        return Err(bad("inconsistent lengths"));
    }
    if header.ranker.as_ref().is_some_and(|r| !r.is_valid()) {
        return Err(bad("malformed ranker"));
    }
    Ok(TrainedModel {
        version: header.version,
        trained_at: header.trained_at,
        collab: collab.remap(&map, ids.len()),
        ranker: header.ranker,
        report: header.report,
    })
}

/// The newest readable model in `dir`, if any (unreadable files are reported and skipped).
pub fn load_latest(dir: &Path, ids: &mut ItemIds) -> Option<TrainedModel> {
    let mut versions = versions(dir).ok()?;
    versions.sort_unstable_by(|a, b| b.cmp(a));
    for v in versions {
        match load(&path_of(dir, v), ids) {
            Ok(model) => return Some(model),
            Err(e) => tracing::warn!(error = %e, "trained model unreadable; trying an older one"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::CollabParams;

    #[test]
    fn saves_atomically_keeps_versions_and_remaps_ordinals() {
        let dir = std::env::temp_dir().join(format!("semrec-model-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let users = vec![vec![0, 1], vec![0, 1], vec![1, 2]];
        let collab = ItemNeighbours::train(3, &users, &CollabParams::default());
        let ids: Vec<Arc<str>> = ["a", "b", "c"].into_iter().map(Arc::from).collect();
        for version in 1..=4 {
            let model = TrainedModel {
                version,
                collab: collab.clone(),
                ..TrainedModel::empty()
            };
            save(&dir, &model, &ids, 2).unwrap();
        }
        let mut v = versions(&dir).unwrap();
        v.sort_unstable();
        assert_eq!(v, vec![3, 4]);

        // Another process numbered the items differently: "c" and "b" come first.
        let mut live = ItemIds::default();
        live.intern(&Arc::from("c"));
        live.intern(&Arc::from("b"));
        let loaded = load_latest(&dir, &mut live).unwrap();
        assert_eq!(loaded.version, 4);
        let a = live.get("a").unwrap();
        let b = live.get("b").unwrap();
        assert!(loaded.collab.neighbours(a).0.contains(&b));

        // A corrupted newest file falls back to the older version.
        let newest = path_of(&dir, 4);
        let mut bytes = std::fs::read(&newest).unwrap();
        let last = bytes.len() - 10;
        bytes[last] ^= 0xff;
        std::fs::write(&newest, bytes).unwrap();
        assert_eq!(load_latest(&dir, &mut live).unwrap().version, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
