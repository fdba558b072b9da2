//! The seam between the engine and the text encoder: what an item's embedded text is, and
//! the trait any encoder (the MiniLM encoder, or a fake one in tests) implements.

use shared_types::Item;

/// Turns texts into unit vectors; implemented by `gpu_batch::TextEncoder`.
pub trait Embedder: Send + Sync {
    fn dim(&self) -> usize;
    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, gpu_batch::EmbedError>;
}

impl Embedder for gpu_batch::TextEncoder {
    fn dim(&self) -> usize {
        gpu_batch::TextEncoder::dim(self)
    }

    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, gpu_batch::EmbedError> {
        gpu_batch::TextEncoder::embed_batch(self, texts)
    }
}

/// The text embedded for an item: title, genres and description.
pub fn item_text(item: &Item) -> String {
    let mut text = item.title.clone();
    if !item.genres.is_empty() {
        text.push_str(". Genres: ");
        text.push_str(&item.genres.join(", "));
    }
    if let Some(d) = item.description.as_deref().filter(|d| !d.is_empty()) {
        text.push_str(". ");
        text.push_str(d);
    }
    text
}
