"""Training: scheduled sampling, the loop, checkpoints, run folders and configs."""
