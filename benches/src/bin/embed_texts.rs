//! Embeds a text file, one text per line, with the project's MiniLM encoder (CPU or GPU, as
//! the backend selects) and writes the unit vectors as little-endian f32 rows.
//!
//! usage: embed_texts TEXTS OUT.f32 [--batch 256] [--model models/all-MiniLM-L6-v2]

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (Some(texts), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: embed_texts TEXTS OUT.f32 [--batch 256] [--model DIR]");
        std::process::exit(2);
    };
    let batch: usize = flag("--batch").map_or(256, |b| b.parse().expect("--batch"));
    let model =
        PathBuf::from(flag("--model").unwrap_or_else(|| gpu_batch::DEFAULT_MODEL_DIR.into()));
    let encoder = gpu_batch::TextEncoder::load(&model).unwrap_or_else(|e| {
        eprintln!("embed_texts: {e}");
        std::process::exit(1)
    });
    let lines: Vec<String> = std::fs::read_to_string(texts)
        .expect("texts file")
        .lines()
        .map(String::from)
        .collect();
    let mut writer = std::io::BufWriter::new(std::fs::File::create(out).expect("output file"));
    let started = Instant::now();
    for (i, chunk) in lines.chunks(batch.max(1)).enumerate() {
        for v in encoder.embed_batch(chunk).expect("embedding") {
            for x in v {
                writer.write_all(&x.to_le_bytes()).expect("write");
            }
        }
        if i % 40 == 0 {
            eprint!("\rembedded {}/{}", (i + 1) * batch, lines.len());
        }
    }
    writer.flush().expect("flush");
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "\rembedded {} texts in {secs:.1} s ({:.0}/s, backend {})",
        lines.len(),
        lines.len() as f64 / secs,
        encoder.backend().name()
    );
}
