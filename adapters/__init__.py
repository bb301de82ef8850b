"""The adapter roles: the rig's side of every device link, between the devices and ZeroMQ.

Owns the device link interfaces and their backends (:mod:`.links`; UDP :mod:`.udp_link`, serial
:mod:`.serial_link`, ptys :mod:`.pty`) with the registry of backends by link name
(:mod:`.backends`), the clock-sync master (:mod:`.sync_master`), the start handshake's rig
side (:mod:`.feed_arming`), the rig socket's default address (:mod:`.local_address`), the venue
feed adapter (:mod:`.venue_adapter` with its outbox, its private problem :mod:`.venue_solver`
and its half of the federated protocols :mod:`.venue_prices`, :mod:`.venue_rounds`), the shared
signals it derives and releases (:mod:`.venue_signals`, :mod:`.signal_privacy`,
:mod:`.signal_shares`), and the broker adapter with its plan replica (:mod:`.broker_adapter`,
:mod:`.plan_replica`).

Layer: a role. It may import the protocols, subsystems, plan kernels, wire formats and
contracts below it; it must not import the coordinator (reached only over ZeroMQ), the device
emulators (reached only over their links), replay, kpi or rig.
"""
