"""The rig's testing kit, installed with the package so a lab can import it.

Owns:

* :mod:`.links` — the checks every rig-side feed link must pass (``check_*``,
  :data:`~.links.ALL_CHECKS`), written once against a pair factory, with a loopback factory for
  every registered link backend (:data:`~.links.LOOPBACK_PAIRS`). A lab checks its hardware
  with its own factory::

      from arbsphere.testing.links import ALL_CHECKS

      def my_pair():  # -> (device side, rig-side FeedLink)
          ...

      for check in ALL_CHECKS:
          check(my_pair)

  A new link backend (``arbsphere/adapters/backends.py``) gets a loopback pair here, and the
  test suite runs every check against it.
  They judge the rig's side of a link; the suites that judge a *device* (feed, broker) and
  an adapter's contract traffic are :mod:`arbsphere.conformance`.
* :mod:`.clock` — :class:`~.clock.StepClock`, the one fake clock: standing still, stepping on
  each read, or a real clock shifted by hand.
* :mod:`.sockets` — :class:`~.sockets.FakeSocket` (a ZeroMQ socket without a peer) and
  :class:`~.sockets.FakeFeedLink` / :class:`~.sockets.FakeBrokerLink` (device links without a
  device), to drive a role's loop one step at a time.

Layer: at the top beside ``rig`` (it drives adapters over links to the device emulators); no
package of the rig imports it.
"""

from arbsphere.testing.clock import StepClock
from arbsphere.testing.sockets import FakeBrokerLink, FakeFeedLink, FakeSocket

__all__ = ["FakeBrokerLink", "FakeFeedLink", "FakeSocket", "StepClock"]
