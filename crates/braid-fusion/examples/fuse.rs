//! Fuse a text search and an image search both ways: as Qdrant's server does, and
//! with the classic client-side helpers, sweeping the image list's weight.
//!
//! `cargo run -p braid-fusion --example fuse`

use braid_fusion::classic::{self, ScoredList};
use braid_fusion::{FusionError, qdrant};

fn main() -> Result<(), FusionError> {
    // Cosine similarities from two spaces, best first.
    let text = vec![("red shoe", 0.91), ("red hat", 0.84), ("blue shoe", 0.80), ("red scarf", 0.62)];
    let image = vec![("blue shoe", 0.88), ("red shoe", 0.86), ("green shoe", 0.71)];

    println!("Qdrant RRF (k = 2):");
    for f in qdrant::rrf(&[&text[..], &image[..]], qdrant::DEFAULT_RRF_K, None)? {
        println!("  {:<10} {:.4}", f.id, f.score);
    }
    println!("Qdrant DBSF:");
    for f in qdrant::dbsf(&[&text[..], &image[..]], None)? {
        println!("  {:<10} {:.4}", f.id, f.score);
    }

    let lists = [ScoredList::similarities(text), ScoredList::similarities(image)];
    for image_weight in [1.0, 0.7, 0.5, 0.3, 0.0] {
        let fused = classic::reciprocal_rank_fusion(&lists, classic::DEFAULT_K, Some(&[1.0, image_weight]))?;
        let ranking: Vec<&str> = fused.iter().map(|f| f.id).collect();
        println!("classic RRF, image weight {image_weight:.1}: {ranking:?}");
    }
    println!("classic DBSF:");
    for f in classic::distribution_based_score_fusion(&lists)? {
        println!("  {:<10} {:.4}", f.id, f.score);
    }
    Ok(())
}
