"""Training a model on good images: settings, resumable checkpoints, the training run."""
