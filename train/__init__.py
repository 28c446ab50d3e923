"""Training stage: the DCGAN, the sprite data and the training loop (needs the `train` extra: torch)."""
