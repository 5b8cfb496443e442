"""Floor 1, the networks: the book's model zoo (VGG-style and ResNet-style classifiers), the normalisation
wrapper, and building a model by name (:mod:`fmask.models.zoo`); reading checkpoints, the book's and users' own
(:mod:`fmask.models.checkpoint`)."""
