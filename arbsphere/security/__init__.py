"""Security and governance: who may speak, and the record of what was agreed.

Owns role identities and credentials (:mod:`.identity`, :mod:`.credentials`, :mod:`.roster`),
CurveZMQ authentication and ZAP (:mod:`.zap`), per-message tags (:mod:`.tags`,
:mod:`.secure_socket`), a role's security wiring (:mod:`.role_security`), PlanDelta attestations
(:mod:`.attest`), the governance ledger and its Merkle tree (:mod:`.ledger`, :mod:`.merkle`),
the governance channel (:mod:`.governance_frames`), the campaign registry that issues the
credentials and keeps the ledger (:mod:`.campaign_registry`) and the security settings
(:mod:`.settings`). Everything here is built on the ``cryptography`` package's primitives
(Ed25519, X25519, HKDF) and the standard library's HMAC; nothing implements a primitive by hand.

Layer: a subsystem. It may import privacy's settings, the contracts and the wire formats below
it; it must not import journal or clocksync (its siblings), the roles, replay, kpi or rig.
Secure aggregation and privacy budgets live in :mod:`arbsphere.privacy`.
"""
