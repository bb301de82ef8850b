"""Privacy: what a venue lets the coordinator learn, and how much.

Owns secure aggregation with pairwise masks (:mod:`.secure_agg`: seeds, mask expansion, fixed
point, the masked sum), the share layouts of the federated rounds and of the shared signals
built on it (:mod:`.secure_rounds`, :mod:`.secure_signals`), and the differential-privacy
budgets that noise every released signal (:mod:`.budget`).

Layer: a subsystem. It may import the contracts, wire formats and protocol math below it and
the identities of :mod:`arbsphere.security` (pair keys come from the roster); it must not import
the roles (adapters, coordinator), replay, kpi or rig.
"""
