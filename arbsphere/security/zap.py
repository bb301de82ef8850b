"""CurveZMQ on pipeline sockets and ZAP authentication backed by the credential directory.

:func:`curve_server` / :func:`curve_client` set a socket's CURVE options (before it binds or
connects). :class:`CredentialAuthenticator` runs pyzmq's own ZAP handler
(``zmq.auth.thread.ThreadAuthenticator`` with a CURVE credentials-provider callback): each
CURVE handshake on a socket of its ZAP domain asks the directory for the client's key and
the verifier for its credential; the handshake is refused (counted, ``on_refusal`` called)
for an unknown key or any :class:`~arbsphere.security.credentials.CredentialVerifier`
refusal. Non-CURVE handshakes in the domain are refused too (``not_curve``).

ZAP runs once per connection. Checks at message time use the key the socket reports for a
message (``frame.get("User-Id")``, the Z85 client key) with
:meth:`~arbsphere.security.credentials.CredentialDirectory.authorize` or
``verifier.check(directory.by_curve_key(z85), roles)``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from arbsphere.errors import CredentialError, PipelineError
from arbsphere.security.credentials import (
    CredentialDirectory,
    CredentialVerifier,
    RefusalCounts,
)
from arbsphere.security.identity import Role, RoleIdentity, curve_key_from_z85

ZAP_DOMAIN = "arbsphere"
log = logging.getLogger(__name__)

RefusalHook = Callable[[str, bytes], None]


def _require_unattached(sock: zmq.Socket, what: str) -> None:
    if sock.get(zmq.LAST_ENDPOINT):
        raise PipelineError(f"{what}: set CURVE options before the socket binds or connects")


def curve_server(sock: zmq.Socket, identity: RoleIdentity, *, domain: str = ZAP_DOMAIN) -> None:
    """Make ``sock`` a CURVE server with ``identity``'s CURVE keys, authenticated through
    ZAP in ``domain``. Call before ``bind``."""
    _require_unattached(sock, "curve_server")
    sock.curve_secretkey = identity.curve_secret
    sock.curve_publickey = identity.curve_public
    sock.zap_domain = domain.encode("utf-8")
    sock.curve_server = True


def curve_client(sock: zmq.Socket, identity: RoleIdentity, server_public_z85: bytes | str) -> None:
    """Make ``sock`` a CURVE client with ``identity``'s CURVE keys, trusting the server key
    ``server_public_z85`` (40 Z85 characters). Call before ``connect``."""
    _require_unattached(sock, "curve_client")
    curve_key_from_z85(server_public_z85, "server CURVE public key")
    server = (
        server_public_z85.encode("ascii")
        if isinstance(server_public_z85, str)
        else server_public_z85
    )
    sock.curve_serverkey = bytes(server)
    sock.curve_publickey = identity.curve_public
    sock.curve_secretkey = identity.curve_secret


class _CurveOnlyAuthenticator(ThreadAuthenticator):
    """pyzmq's thread authenticator, refusing NULL and PLAIN handshakes in our domain (pyzmq
    would let NULL through when no address policy is set)."""

    def __init__(
        self, context: zmq.Context, domains: Collection[str], on_not_curve: Callable[[], None]
    ):
        super().__init__(context=context, log=log)
        self._domains = domains  # the owner's live view: domains added later count too
        self._on_not_curve = on_not_curve

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        in_domain = len(msg) >= 6 and msg[2].decode("utf-8", "replace") in self._domains
        if in_domain and msg[5] != b"CURVE":
            self._on_not_curve()
            self._send_zap_reply(msg[1], b"400", b"CURVE required")
            return
        await super().handle_zap_message(msg)


class CredentialAuthenticator:
    """ZAP handler for a context: accepts a CURVE client iff the directory holds a credential
    for its key that ``verifier`` accepts now for one of ``allowed_roles``.

    Counts accepted handshakes (:attr:`accepted`) and refusals per reason (:attr:`refusals`;
    the verifier's own counts also include them). ``on_refusal(reason, client_key_z85)`` is
    called for each refusal, in the authenticator thread. One per context (libzmq has one
    ZAP endpoint per context); sockets that admit different roles use different ZAP domains
    (:meth:`allow`), e.g. a coordinator's inbound socket admits venues and the broker, its
    outbound socket (plans) only the broker."""

    def __init__(
        self,
        ctx: zmq.Context,
        directory: CredentialDirectory,
        verifier: CredentialVerifier,
        allowed_roles: Collection[Role],
        on_refusal: RefusalHook | None = None,
        *,
        domain: str = ZAP_DOMAIN,
    ) -> None:
        if directory.verifier is not verifier:
            raise ValueError("directory must use the same verifier as the authenticator")
        if not allowed_roles:
            raise ValueError("allowed_roles is empty: every client would be refused")
        self.ctx = ctx
        self.directory = directory
        self.verifier = verifier
        self.allowed_roles = frozenset(Role(r) for r in allowed_roles)
        self.on_refusal = on_refusal
        self.domain = domain
        #: ZAP domain -> the roles its sockets admit
        self.domains: dict[str, frozenset[Role]] = {domain: self.allowed_roles}
        self.refusals = RefusalCounts()
        self._accepted = 0
        self._lock = threading.Lock()
        self._auth: _CurveOnlyAuthenticator | None = None

    @property
    def accepted(self) -> int:
        """CURVE handshakes accepted so far."""
        with self._lock:
            return self._accepted

    def start(self) -> None:
        """Bind the context's ZAP endpoint and start the authenticator thread."""
        if self._auth is not None:
            raise PipelineError("CredentialAuthenticator already started")
        auth = _CurveOnlyAuthenticator(self.ctx, self.domains.keys(), self._refuse_not_curve)
        try:
            auth.start()
        except zmq.ZMQError as exc:
            auth.stop()
            raise PipelineError(
                f"cannot start the ZAP handler (another one on this context?): {exc}"
            ) from exc
        for domain in self.domains:
            auth.configure_curve_callback(domain, credentials_provider=self)
        self._auth = auth

    def allow(self, domain: str, roles: Collection[Role]) -> None:
        """Admit ``roles`` on the sockets of ZAP ``domain`` (set with :func:`curve_server`)."""
        if not roles:
            raise ValueError(f"domain {domain!r}: no roles: every client would be refused")
        self.domains[domain] = frozenset(Role(r) for r in roles)
        if self._auth is not None:
            self._auth.configure_curve_callback(domain, credentials_provider=self)

    def stop(self) -> None:
        """Stop the thread and close the ZAP socket (idempotent)."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def is_alive(self) -> bool:
        """Whether the authenticator thread runs."""
        return self._auth is not None and self._auth.is_alive()

    def __enter__(self) -> CredentialAuthenticator:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def callback(self, domain: str, key: bytes) -> bool:
        """pyzmq's credentials-provider hook: ``key`` is the client's Z85 public key.

        Never raises (an exception would stop the ZAP thread and hang every handshake):
        an unexpected error refuses the client with reason ``error``."""
        roles = self.domains.get(domain)
        if roles is None:
            self._refused("unknown_domain", key)
            return False
        try:
            self.directory.authorize(key, roles)
        except CredentialError as exc:
            self._refused(exc.reason, key)
            log.info("ZAP refused %s: %s", key, exc)
            return False
        except Exception:
            log.exception("ZAP credential check failed for %r", key)
            self._refused("error", key)
            return False
        with self._lock:
            self._accepted += 1
        return True

    def _refuse_not_curve(self) -> None:
        self._refused("not_curve", b"")

    def _refused(self, reason: str, key: bytes) -> None:
        self.refusals.add(reason)
        if self.on_refusal is not None:
            try:
                self.on_refusal(reason, key)
            except Exception:
                log.exception("on_refusal hook failed")
