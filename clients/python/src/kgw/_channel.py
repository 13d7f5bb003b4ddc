"""Channel options shared by the async and sync clients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import grpc

#: What ``tls=`` accepts: None/False for plaintext (loopback, meshes with their
#: own mTLS), True for TLS with the system roots, or explicit credentials
#: (e.g. ``grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)``
#: for mTLS).
TLSArg = Union[None, bool, grpc.ChannelCredentials]

#: Default gRPC channel options: generous message limits for large results.
DEFAULT_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
)


def credentials(tls: TLSArg) -> grpc.ChannelCredentials | None:
    """Returns the channel credentials for ``tls=``, or None for plaintext."""
    if tls is None or tls is False:
        return None
    if tls is True:
        return grpc.ssl_channel_credentials()
    return tls


def call_metadata(token: str | None, metadata: Sequence[tuple[str, str]] | None) -> tuple[tuple[str, str], ...]:
    """Returns the metadata sent with every call: the bearer token, then extras."""
    out: list[tuple[str, str]] = []
    if token:
        out.append(("authorization", f"Bearer {token}"))
    out.extend(metadata or ())
    return tuple(out)


def options(extra: Sequence[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
    """Returns the default channel options overridden by ``extra``."""
    merged = dict(DEFAULT_OPTIONS)
    merged.update(dict(extra or ()))
    return list(merged.items())
