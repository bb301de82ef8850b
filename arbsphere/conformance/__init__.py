"""The device conformance suites, installed with the package so a lab's own harness imports
them: one suite per interface, run unchanged against every link backend.

* :mod:`.model` — :class:`~.model.Check` (name, interface, value, unit, limits with a marginal
  band, verdict, required, detail) and :class:`~.model.SuiteResult`;
* :mod:`.judges` — the limits and the pure functions that turn recorded traffic into checks,
  shared by the active suites and a campaign's result set (``kpi.json`` ``conformance``);
* :mod:`.contract_suite` — :func:`~.contract_suite.contract_checks`: an adapter's emitted
  messages against the contract graph (the rig runs the adapter, ``arbsphere conformance``);
* :mod:`.feed_suite` / :mod:`.broker_suite` — :func:`run_feed_suite` /
  :func:`run_broker_suite`: open the rig side of the device's link through the backend
  registry (``FeedLinkSpec`` / ``BrokerLinkSpec``: UDP or serial, hardware or emulator alike:
  a suite never asks which), drive the device as the rig does and judge it;
* :mod:`.session` (the link session), :mod:`.garbage` (malformed input and the raw writes),
  :mod:`.capabilities` (checks gated on what the probe found);
* :mod:`.writers` — terminal table, JUnit XML, JSON.

A lab runs a suite against its own device::

    from arbsphere.adapters.backends import FeedLinkSpec
    from arbsphere.adapters.links import LinkParams
    from arbsphere.clock import RealtimeClock
    from arbsphere.conformance import FeedTarget, run_feed_suite

    spec = FeedLinkSpec.of("udp", LinkParams(name="venue_a", bind_host="10.0.0.1",
                                             bind_port=5000))
    result = run_feed_suite(FeedTarget("venue_a-device", spec, device_id=10, venue_id=0,
                                       rate_hz=2000), RealtimeClock())
    assert result.passed, [c for c in result.checks if not c.ok]

Layer: above ``replay`` and below ``kpi`` — it drives adapters' links and judges device
messages, and the result set judges a campaign's own traffic with the same judges, so ``kpi``
imports it; ``rig`` runs it (``arbsphere conformance``) and starts the emulators it is run
against: this package never imports the emulators, a device is whatever is on the link.
"""

from arbsphere.conformance.broker_suite import BrokerSuiteSettings, BrokerTarget, run_broker_suite
from arbsphere.conformance.feed_suite import FeedSuiteSettings, FeedTarget, run_feed_suite
from arbsphere.conformance.model import Check, Limits, SuiteResult

__all__ = [
    "BrokerSuiteSettings",
    "BrokerTarget",
    "Check",
    "FeedSuiteSettings",
    "FeedTarget",
    "Limits",
    "SuiteResult",
    "run_broker_suite",
    "run_feed_suite",
]
