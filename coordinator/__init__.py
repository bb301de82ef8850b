"""The coordinator role: local problems in, exactly delta-neutral PlanDeltas out.

Owns the solvers (exchange ADMM :mod:`.admm`, the exact centralized baseline :mod:`.baseline`,
integer neutralization :mod:`.neutralize`), the coordinator's half of the federated protocols
(price search :mod:`.price_search` and rounds :mod:`.price_rounds`; ADMM :mod:`.federated`,
:mod:`.masked_exchange`, :mod:`.rounds`), the shared signals' aggregation
(:mod:`.signal_aggregate`), what it journals (:mod:`.journal_records`, :mod:`.recorder`,
:mod:`.journal_thread`), its governance events (:mod:`.plan_events`), and the role itself: the
decisions (:mod:`.core`, the federated solve and venue outages :mod:`.federated_solve`), the
receive loop the live process and the replay both drive (:mod:`.receive_loop`), its trace
tables (:mod:`.traces`) and the process wiring (:mod:`.service`).

Layer: a role. It may import the protocols, subsystems, plan kernels and contracts below it;
it must not import the adapters (its peers, reached only over ZeroMQ), the device emulators,
replay, kpi or rig.
"""
