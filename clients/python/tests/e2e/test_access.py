"""API keys, role bindings, whoami and grants over mTLS, against a real
`kgw serve --auth required` with TLS and required client certificates."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest

import kgw

from .conftest import SecureGateway


def _tls(gw: SecureGateway) -> kgw.TLS:
    return kgw.TLS(ca=gw.ca, cert=gw.client_cert, key=gw.client_key)


async def test_access_with_keys_bindings_and_mtls(secure_gateway: SecureGateway) -> None:
    gw = secure_gateway
    async with kgw.KailashClient(gw.target, token=gw.admin_key, tls=_tls(gw)) as admin:
        me = await admin.access.whoami()
        assert me.principal.startswith("key:") and me.method == "api_key" and me.roles == ["admin"]

        created = await admin.access.create_api_key(f"ci-{uuid.uuid4().hex[:6]}", ["executor"], ttl=3600)
        assert created.key.startswith(f"kgw_{created.api_key.id}_")
        assert created.api_key.roles == ["executor"] and created.api_key.expire_time is not None
        listed = [k async for k in admin.access.iter_api_keys(page_size=1)]
        assert created.api_key.id in [k.id for k in listed]
        assert created.key not in repr(listed)

        async with kgw.KailashClient(gw.target, token=created.key, tls=_tls(gw)) as ci:
            assert (await ci.access.whoami()).principal == f"key:{created.api_key.id}"
            with pytest.raises(kgw.PermissionDenied):
                await ci.access.list_api_keys()

        # The certificate alone: the SPIFFE id, with roles from a pattern binding.
        async with kgw.KailashClient(gw.target, tls=_tls(gw)) as cert_only:
            assert await cert_only.access.whoami() == kgw.Identity(gw.spiffe_id, [], "mtls")
            binding = await admin.access.create_role_binding("spiffe://mesh.example/ns/payments/*", ["viewer"])
            assert binding.principal == "spiffe://mesh.example/ns/payments/*" and binding.roles == ["viewer"]
            assert (await cert_only.access.whoami()).roles == ["viewer"]
            assert binding.id in [b.id async for b in admin.access.iter_role_bindings()]
            await admin.access.delete_role_binding(binding.id)
            assert binding.id not in [b.id for b in await admin.access.list_role_bindings()]

        # Grants on a secret.
        name = f"grant_{uuid.uuid4().hex[:6]}"
        stored = await admin.secrets.store_secret(name, {"token": "t0p"}, allowed_callers=[f"key:{created.api_key.id}"])
        assert stored.allowed_callers == [f"key:{created.api_key.id}"] and stored.creator == me.principal
        updated = await admin.secrets.update_secret_access(name, ["role:executor"])
        assert updated.allowed_callers == ["role:executor"] and updated.version == stored.version

        await admin.access.revoke_api_key(created.api_key.id)
        assert created.api_key.id not in [k.id async for k in admin.access.iter_api_keys()]

    # Revocation reaches every replica within 5 s.
    with kgw.SyncKailashClient(gw.target, token=created.key, tls=_tls(gw)) as revoked:
        deadline = time.monotonic() + 10
        while True:
            try:
                revoked.access.whoami()
            except kgw.Unauthenticated:
                break
            assert time.monotonic() < deadline, "a revoked key still works after 10 s"
            await asyncio.sleep(0.2)


async def test_secure_gateway_refuses_what_it_cannot_verify(secure_gateway: SecureGateway) -> None:
    gw = secure_gateway
    for tls in (kgw.TLS(ca=gw.ca), True, None):
        async with kgw.KailashClient(gw.target, token=gw.admin_key, tls=tls) as client:
            with pytest.raises(kgw.KailashError) as info:
                await client.access.whoami()
        assert info.value.code == grpc.StatusCode.UNAVAILABLE, (tls, info.value)
    async with kgw.KailashClient(gw.target, token="kgw_nope_nope", tls=_tls(gw)) as client:
        with pytest.raises(kgw.Unauthenticated):
            await client.list_workflows()
