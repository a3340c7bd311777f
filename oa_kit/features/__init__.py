"""Features: image embeddings, cartilage biomarkers, per-knee feature assembly with families."""
