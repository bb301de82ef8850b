"""Security and governance: identities and credentials, CurveZMQ authentication, per-message
tags, the governance ledger, secure aggregation and privacy budgets. Everything here is built on
the ``cryptography`` package's primitives (Ed25519, X25519, HKDF) and the standard library's
HMAC; nothing here implements a primitive by hand."""
