"""Floor 1, the chores every other floor stands on.

* :mod:`fmask.infra.atomic` -- atomic file writes and the canonical JSON of parameters;
* :mod:`fmask.infra.integrity` -- one verified artifact file: SHA-256 sidecar, ``weights_only`` loads;
* :mod:`fmask.infra.lock` -- the exclusive, re-entrant ``flock`` behind a store's claims;
* :mod:`fmask.infra.store` -- the parameter-keyed artifact store built on those three;
* :mod:`fmask.infra.runtime` -- devices, seeding, thread pinning and progress bars;
* :mod:`fmask.infra.deprecation` -- the old import paths that still resolve, with a warning.
"""
