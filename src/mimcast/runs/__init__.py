"""Run folders: training, evaluating and predicting with everything a run writes in one place."""
