"""Task-specific pieces for training and inference: captioning and counting."""
