//! Catalogue vectors cached on disk, keyed by the model and the items' embedded texts, so
//! that offline tools (`reco-eval`, `reco-train --ratings`) embed a catalogue once and share
//! the result across runs and across tools.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use shared_types::Item;

use crate::engine::{item_text, Embedder};

/// Why the catalogue's vectors could not be had.
#[derive(Debug, thiserror::Error)]
pub enum VectorCacheError {
    /// Reading or writing the cache failed, or the embedding task died.
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Embed(#[from] gpu_batch::EmbedError),
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> VectorCacheError {
    VectorCacheError::Data(format!("{what} {}: {e}", path.display()))
}

const VECTORS_MAGIC: &[u8; 8] = b"SREVAL01";

fn write_vectors(path: &Path, ids: &[String], vectors: &[Vec<f32>]) -> std::io::Result<()> {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(16 + ids.len() * (dim * 4 + 16));
    out.extend_from_slice(VECTORS_MAGIC);
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for (id, v) in ids.iter().zip(vectors) {
        out.extend_from_slice(&(id.len() as u32).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, out)?;
    std::fs::rename(tmp, path)
}

fn read_vectors(path: &Path) -> std::io::Result<(usize, HashMap<String, Vec<f32>>)> {
    let bytes = std::fs::read(path)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt vector cache");
    let mut pos = 0usize;
    let mut take = |n: usize| -> std::io::Result<&[u8]> {
        let s = bytes.get(pos..pos + n).ok_or_else(bad)?;
        pos += n;
        Ok(s)
    };
    if take(8)? != VECTORS_MAGIC {
        return Err(bad());
    }
    let u32_at = |s: &[u8]| u32::from_le_bytes(s.try_into().expect("4 bytes")) as usize;
    let dim = u32_at(take(4)?);
    let count = u32_at(take(4)?);
    let mut map = HashMap::with_capacity(count);
    for _ in 0..count {
        let len = u32_at(take(4)?);
        let id = String::from_utf8(take(len)?.to_vec()).map_err(|_| bad())?;
        let v: Vec<f32> = take(dim * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        map.insert(id, v);
    }
    Ok((dim, map))
}

/// Vectors of `items` from `cache_dir` (keyed by model and texts), embedding and caching
/// them on a miss. Returns the vectors, the loaded model (the engine needs it too), how
/// many items were embedded and how long that took.
pub async fn catalogue_vectors(
    items: &[Item],
    cache_dir: &Path,
    model_dir: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(HashMap<String, Vec<f32>>, Arc<dyn Embedder>, usize, f64), VectorCacheError> {
    let encoder = Arc::new(gpu_batch::TextEncoder::load(model_dir)?);
    let model_name = model_dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut canonical = format!("model={model_name} dim={}\n", encoder.dim());
    for item in items {
        canonical.push_str(&item.id);
        canonical.push('\t');
        canonical.push_str(&item_text(item));
        canonical.push('\n');
    }
    let path = cache_dir.join(format!(
        "vectors-{}.bin",
        shared_types::stable_hash(&canonical)
    ));
    if let Ok((dim, map)) = read_vectors(&path) {
        if dim == encoder.dim() && items.iter().all(|i| map.contains_key(&i.id)) {
            progress(&format!("{} vectors from {}", items.len(), path.display()));
            return Ok((map, encoder, 0, 0.0));
        }
    }
    progress(&format!(
        "embedding {} films on {} (first run only; cached in {})",
        items.len(),
        encoder.backend().name(),
        path.display()
    ));
    let started = Instant::now();
    let mut vectors = Vec::with_capacity(items.len());
    for chunk in items.chunks(256) {
        let texts: Vec<String> = chunk.iter().map(item_text).collect();
        let enc = encoder.clone();
        let batch = tokio::task::spawn_blocking(move || enc.embed_batch(&texts))
            .await
            .map_err(|e| VectorCacheError::Data(format!("embedding task failed: {e}")))??;
        vectors.extend(batch);
        progress(&format!(
            "embedded {}/{} ({:.0} films/s)",
            vectors.len(),
            items.len(),
            vectors.len() as f64 / started.elapsed().as_secs_f64().max(1e-9)
        ));
    }
    let secs = started.elapsed().as_secs_f64();
    let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    std::fs::create_dir_all(cache_dir).map_err(|e| io_error("cannot create", cache_dir, e))?;
    write_vectors(&path, &ids, &vectors).map_err(|e| io_error("cannot write", &path, e))?;
    let map = ids.into_iter().zip(vectors).collect();
    Ok((map, encoder, items.len(), secs))
}
