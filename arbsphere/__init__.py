"""ArbSphere Rig: the shared contracts every part of the rig builds on.

The design card's folders install under this namespace (``arbsphere.rig``,
``arbsphere.firmware_interfaces``, ``arbsphere.adapters``, ``arbsphere.coordinator``,
``arbsphere.kpi``); this package itself owns what they all share: the exception tree
(:mod:`arbsphere.errors`), the layout-declaration mechanism (:mod:`arbsphere.layout`), the
canonical IR and its schema registry (:mod:`arbsphere.contracts`), the clock interface
(:mod:`arbsphere.clock`) and role-process plumbing (:mod:`arbsphere.runtime`); the federated
protocols' math both sides share (:mod:`arbsphere.admm_updates`, :mod:`arbsphere.price_protocol`,
:mod:`arbsphere.rounds_protocol`). Its subpackages are the subsystems: :mod:`arbsphere.plan`,
:mod:`arbsphere.journal`, :mod:`arbsphere.clocksync`, :mod:`arbsphere.security`,
:mod:`arbsphere.privacy` and :mod:`arbsphere.replay`.

The layers, enforced by ``lint-imports`` (``pyproject.toml``), from the top: rig | testing
(the testing kit, :mod:`arbsphere.testing`); kpi; replay; the roles (coordinator | adapters);
the protocols; the subsystems (journal | clocksync | security; then privacy);
plan | firmware_interfaces; the contracts; the error tree.
"""

__version__ = "0.1.0"
