"""Floor 6, the claims ledger: the pre-registered rule of each of the paper's claims
(:mod:`~fmask.claims.rules`) and the ledger's rendering (:mod:`~fmask.claims.ledger`)."""
