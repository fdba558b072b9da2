//! The real all-MiniLM-L6-v2 model on the CPU backend: reference similarities, batching
//! invariance and output shape. Needs `scripts/fetch-model.sh` (the test script runs it).

use std::path::PathBuf;

use gpu_batch::TextEncoder;

fn encoder() -> TextEncoder {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(gpu_batch::DEFAULT_MODEL_DIR);
    TextEncoder::load(&dir).expect("model present (run scripts/fetch-model.sh)")
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn matches_reference_similarities() {
    let enc = encoder();
    assert_eq!(enc.dim(), 384);
    let v = enc
        .embed_batch(&[
            "a movie about space travel",
            "an astronaut film",
            "a recipe for pancakes",
        ])
        .unwrap();
    for row in &v {
        let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-4,
            "rows are unit length, got {norm}"
        );
    }
    // Reference values from the sentence-transformers implementation of this model.
    let related = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    assert!(
        (related - 0.712).abs() < 0.005,
        "space/astronaut cosine {related}"
    );
    assert!(
        (unrelated - 0.056).abs() < 0.005,
        "space/pancakes cosine {unrelated}"
    );
}

#[test]
fn batching_and_padding_do_not_change_embeddings() {
    let enc = encoder();
    let texts: Vec<String> = (0..150)
        .map(|i| {
            format!(
                "film number {i} {}",
                "with a longer synopsis ".repeat(i % 7)
            )
        })
        .collect();
    let batched = enc.embed_batch(&texts).unwrap();
    assert_eq!(batched.len(), texts.len());
    for i in [0, 1, 64, 149] {
        let alone = enc.embed(&texts[i]).unwrap();
        let cos = cosine(&alone, &batched[i]);
        assert!(cos > 0.9999, "text {i}: batched vs alone cosine {cos}");
    }
    assert!(enc.embed_batch::<&str>(&[]).unwrap().is_empty());
}
