"""Training: the run config and presets, scheduled sampling, the loop, checkpoints, DDP."""
