"""Resource specifications: what a node may reach through get_resource(name).

Pass them in ``execute_workflow(resources={"db": ...})``. Credentials never
travel in a spec: ``credentials_ref`` names a secret stored in the gateway
(see ``client.secrets.store_secret``), which the gateway merges in itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kgw._values import to_struct
from kgw.v1 import resource_pb2

__all__ = ["ResourceSpec", "cache", "database", "http_client", "ref", "resource_spec"]


@dataclass(frozen=True)
class ResourceSpec:
    """One resource of a request: either ``type`` + ``config`` inline, or ``ref``
    naming a resource stored on the server by an operator."""

    type: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    credentials_ref: str = ""
    credentials_key: str = ""
    ref: str = ""

    def to_proto(self) -> resource_pb2.ResourceSpec:
        """Converts the spec to its message."""
        msg = resource_pb2.ResourceSpec(
            type=self.type,
            credentials_ref=self.credentials_ref,
            credentials_key=self.credentials_key,
            ref=self.ref,
        )
        config = to_struct(self.config)
        if config is not None and config.fields:
            msg.config.CopyFrom(config)
        return msg


def _config(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = {k: v for k, v in base.items() if v is not None}
    for key in ("password", "token", "api_key"):
        if key in extra:
            raise ValueError(
                f"{key!r} is a credential: store it with client.secrets.store_secret and pass credentials_ref"
            )
    merged.update(extra)
    return merged


def database(
    host: str = "localhost",
    port: int = 5432,
    database: str | None = None,
    *,
    credentials_ref: str = "",
    **config: Any,
) -> ResourceSpec:
    """A PostgreSQL database. ``config`` takes the other keys the gateway knows:
    ``sslmode``, ``min_size``, ``max_size``, ``timeout``, ``command_timeout``,
    ``server_settings``."""
    return ResourceSpec(
        type="database",
        config=_config({"host": host, "port": port, "database": database}, config),
        credentials_ref=credentials_ref,
    )


def cache(
    host: str = "localhost",
    port: int = 6379,
    db: int = 0,
    *,
    credentials_ref: str = "",
    **config: Any,
) -> ResourceSpec:
    """A Redis cache. ``config`` takes ``tls`` and ``decode_responses``."""
    return ResourceSpec(
        type="cache",
        config=_config({"host": host, "port": port, "db": db}, config),
        credentials_ref=credentials_ref,
    )


def http_client(
    base_url: str,
    *,
    credentials_ref: str = "",
    credentials_key: str = "",
    **config: Any,
) -> ResourceSpec:
    """An HTTP API. ``config`` takes ``timeout``, ``headers``, ``connection_limit``,
    ``keepalive_timeout`` and ``max_response_bytes``; credentials go only to the
    origin of ``base_url``."""
    return ResourceSpec(
        type="http_client",
        config=_config({"base_url": base_url}, config),
        credentials_ref=credentials_ref,
        credentials_key=credentials_key,
    )


def ref(name: str) -> ResourceSpec:
    """A server-side named resource, stored by an operator with PutResource."""
    return ResourceSpec(ref=name)


def resource_spec(value: ResourceSpec | resource_pb2.ResourceSpec | Mapping[str, Any]) -> resource_pb2.ResourceSpec:
    """Converts a ResourceSpec, a ResourceSpec message or a dict with the same
    keys (``{"type": "database", "config": {...}, "credentials_ref": "pg"}``)."""
    if isinstance(value, ResourceSpec):
        return value.to_proto()
    if isinstance(value, resource_pb2.ResourceSpec):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"type", "config", "credentials_ref", "credentials_key", "ref"}
        if unknown:
            raise ValueError(f"unknown resource spec keys {sorted(unknown)}")
        return ResourceSpec(
            type=str(value.get("type", "")),
            config=value.get("config") or {},
            credentials_ref=str(value.get("credentials_ref", "")),
            credentials_key=str(value.get("credentials_key", "")),
            ref=str(value.get("ref", "")),
        ).to_proto()
    raise TypeError(f"expected a ResourceSpec or dict, got {type(value).__name__}")
