"""Floor 1, the chores every other floor stands on.

* :mod:`fmask.infra.store` -- the artifact store: atomic, SHA-verified writes and ``weights_only`` loads;
* :mod:`fmask.infra.runtime` -- devices, seeding, thread pinning and progress bars;
* :mod:`fmask.infra.deprecation` -- the old import paths that still resolve, with a warning.
"""
