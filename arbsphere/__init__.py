"""ArbSphere Rig: the shared contracts every part of the rig builds on.

The design card's folders install under this namespace (``arbsphere.rig``,
``arbsphere.firmware_interfaces``, ``arbsphere.adapters``, ``arbsphere.coordinator``,
``arbsphere.kpi``); this package itself owns what they all share: the exception tree
(:mod:`arbsphere.errors`), the layout-declaration mechanism (:mod:`arbsphere.layout`), the
canonical IR and its schema registry (:mod:`arbsphere.contracts`) and the clock interface
(:mod:`arbsphere.clock`).
"""

__version__ = "0.1.0"
