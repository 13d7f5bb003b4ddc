"""Channel options shared by the async and sync clients."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union
from urllib.parse import urlsplit

import grpc

__all__ = ["TLS", "TLSArg"]

#: A PEM source: a file path, or the PEM content itself as bytes.
PEMSource = Union[str, "os.PathLike[str]", bytes]


@dataclass(frozen=True)
class TLS:
    """TLS settings for a gateway with a private CA or that asks for client
    certificates (mTLS)::

        kgw.KailashClient("kgw.internal:443", tls=kgw.TLS(ca="ca.crt", cert="client.crt", key="client.key"))

    Each of ``ca``, ``cert`` and ``key`` is a file path or the PEM content as
    bytes; files are read when the client is created.

    Attributes:
        ca: CA certificate(s) the gateway's certificate must chain to, instead of the system roots.
        cert: client certificate (chain) presented for mTLS; needs ``key``.
        key: private key of ``cert``.
        server_name: name the gateway's certificate must be valid for, when it
            differs from the target's host.
    """

    ca: PEMSource | None = None
    cert: PEMSource | None = None
    key: PEMSource | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        """Returns the gRPC channel credentials (reads the files)."""
        if (self.cert is None) != (self.key is None):
            raise ValueError("TLS: a client certificate needs both cert and key")
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.ca, "ca"),
            private_key=_pem(self.key, "key"),
            certificate_chain=_pem(self.cert, "cert"),
        )


def _pem(source: PEMSource | None, what: str) -> bytes | None:
    if source is None:
        return None
    if isinstance(source, bytes):
        data = source
    else:
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as err:
            raise ValueError(f"TLS {what}: cannot read {os.fspath(source)!r}: {err.strerror}") from None
    if b"-----BEGIN " not in data:
        raise ValueError(f"TLS {what}: not PEM (no -----BEGIN line)")
    return data


#: What ``tls=`` accepts: None/False for plaintext (loopback, meshes with their
#: own mTLS), True for TLS with the system roots, :class:`TLS` for a private CA
#: or mTLS, or explicit ``grpc.ChannelCredentials``.
TLSArg = Union[None, bool, TLS, grpc.ChannelCredentials]

#: Default gRPC channel options: generous message limits for large results.
DEFAULT_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
)


def resolve_target(target: str, tls: TLSArg) -> tuple[str, TLSArg]:
    """Returns the gRPC target and the TLS setting for ``target``.

    ``http://host:port`` is plaintext and ``https://host:port`` is TLS (the
    system roots unless ``tls=`` says more), as users of HTTP libraries write
    them; a path after the address is refused. Other targets pass through.
    """
    lowered = target.lower()
    if not (lowered.startswith("http://") or lowered.startswith("https://")):
        return target, tls
    parts = urlsplit(target)
    if parts.path not in ("", "/") or parts.query or parts.fragment or not parts.hostname:
        raise ValueError(f"target {target!r}: want http://host:port or https://host:port (no path)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("target: put credentials in token=, not in the URL")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"target {target!r}: bad port") from None
    secure = parts.scheme == "https"
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    address = f"{host}:{port if port is not None else (443 if secure else 80)}"
    if secure:
        if tls is False:
            raise ValueError(f"target {target!r} is https but tls=False")
        return address, True if tls is None else tls
    if tls not in (None, False):
        raise ValueError(f"target {target!r} is http (plaintext) but tls= asks for TLS: use https://")
    return address, None


def credentials(tls: TLSArg) -> grpc.ChannelCredentials | None:
    """Returns the channel credentials for ``tls=``, or None for plaintext."""
    if tls is None or tls is False:
        return None
    if tls is True:
        return grpc.ssl_channel_credentials()
    if isinstance(tls, TLS):
        return tls.credentials()
    return tls


def tls_options(tls: TLSArg) -> list[tuple[str, Any]]:
    """Returns the channel options ``tls=`` needs (a server name override)."""
    if isinstance(tls, TLS) and tls.server_name:
        return [("grpc.ssl_target_name_override", tls.server_name)]
    return []


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
