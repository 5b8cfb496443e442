"""Floor 4, training the five networks: the fit loop with its resumable checkpoints
(:mod:`~fmask.training.fit`) and the attacks, for adversarial training and for evaluation
(:mod:`~fmask.training.attacks`)."""
