"""TLS, mTLS and bearer tokens of both clients, against a loopback TLS gRPC
server (a probe) that answers every call with UNIMPLEMENTED after recording
the authorization header and the verified client certificate."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

import kgw

from .pki import CA, Pair


@dataclass
class Probe:
    target: str
    calls: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def last(self) -> dict[str, str]:
        with self.lock:
            assert self.calls, "the probe saw no call"
            return self.calls[-1]


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[bytes, bytes] | None:
        method = str(details.method)

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            md = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            auth = context.auth_context()
            names: Any = auth.get("x509_common_name", [])
            cn = b"".join(names).decode()
            with self.probe.lock:
                self.probe.calls.append({"method": method, "authorization": md.get("authorization", ""), "cn": cn})
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "tls probe")

        return grpc.unary_unary_rpc_method_handler(handle)


def _start_probe(server_pair: Pair, client_ca: Path | None) -> tuple[grpc.Server, Probe]:
    creds = grpc.ssl_server_credentials(
        [(server_pair.key.read_bytes(), server_pair.cert.read_bytes())],
        root_certificates=client_ca.read_bytes() if client_ca else None,
        require_client_auth=client_ca is not None,
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    port = server.add_secure_port("127.0.0.1:0", creds)
    probe = Probe(target=f"127.0.0.1:{port}")
    server.add_generic_rpc_handlers([_Handler(probe)])
    server.start()
    return server, probe


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path, "root")


@pytest.fixture
def tls_probe(ca: CA) -> Iterator[Probe]:
    server, probe = _start_probe(ca.server(), None)
    yield probe
    server.stop(None)


@pytest.fixture
def mtls_probe(ca: CA) -> Iterator[Probe]:
    server, probe = _start_probe(ca.server(), ca.cert)
    yield probe
    server.stop(None)


async def _reach(target: str, **kwargs: Any) -> kgw.KailashError:
    async with kgw.KailashClient(target, **kwargs) as client:
        with pytest.raises(kgw.KailashError) as info:
            await client.get_workflow("probe")
    return info.value


def _reach_sync(target: str, **kwargs: Any) -> kgw.KailashError:
    with kgw.SyncKailashClient(target, **kwargs) as client:
        with pytest.raises(kgw.KailashError) as info:
            client.get_workflow("probe")
    return info.value


async def test_private_ca_and_token(ca: CA, tls_probe: Probe) -> None:
    err = await _reach(tls_probe.target, tls=kgw.TLS(ca=ca.cert), token="kgw_abc_secret")
    assert err.code == grpc.StatusCode.UNIMPLEMENTED, err
    assert tls_probe.last() == {
        "method": "/kgw.v1.WorkflowService/GetWorkflow",
        "authorization": "Bearer kgw_abc_secret",
        "cn": "",
    }
    # The sync client, with the CA as PEM bytes and an https:// target.
    port = tls_probe.target.rsplit(":", 1)[1]
    err = _reach_sync(f"https://127.0.0.1:{port}", tls=kgw.TLS(ca=ca.cert.read_bytes()), token="kgw_def_secret")
    assert err.code == grpc.StatusCode.UNIMPLEMENTED, err
    assert tls_probe.last()["authorization"] == "Bearer kgw_def_secret"


async def test_untrusted_server_is_refused(ca: CA, tls_probe: Probe, tmp_path: Path) -> None:
    other = CA(tmp_path, "other")
    for kwargs in (
        {"tls": True},  # system roots
        {"tls": kgw.TLS(ca=other.cert)},
        {"tls": kgw.TLS(ca=ca.cert, server_name="kgw.example")},
        {},  # plaintext
    ):
        err = await _reach(tls_probe.target, **kwargs)
        assert err.code == grpc.StatusCode.UNAVAILABLE, (kwargs, err)
    assert tls_probe.calls == []


async def test_mutual_tls(ca: CA, mtls_probe: Probe, tmp_path: Path) -> None:
    client = ca.issue("client", "payments", client=True, sans="URI:spiffe://mesh.example/ns/payments/sa/api")
    err = await _reach(mtls_probe.target, tls=kgw.TLS(ca=ca.cert, cert=client.cert, key=client.key))
    assert err.code == grpc.StatusCode.UNIMPLEMENTED, err
    assert mtls_probe.last()["cn"] == "payments"

    err = _reach_sync(mtls_probe.target, tls=kgw.TLS(ca=ca.cert, cert=client.cert.read_bytes(), key=client.key))
    assert err.code == grpc.StatusCode.UNIMPLEMENTED, err

    calls = len(mtls_probe.calls)
    # No client certificate, or one from another CA: the handshake fails.
    stranger = CA(tmp_path, "stranger").issue("intruder", "intruder", client=True)
    for tls in (kgw.TLS(ca=ca.cert), kgw.TLS(ca=ca.cert, cert=stranger.cert, key=stranger.key)):
        err = await _reach(mtls_probe.target, tls=tls)
        assert err.code == grpc.StatusCode.UNAVAILABLE, (tls, err)
    assert len(mtls_probe.calls) == calls


def test_tls_settings_errors(ca: CA, tmp_path: Path) -> None:
    client = ca.issue("c", "c", client=True)
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    cases: list[tuple[kgw.TLS, str]] = [
        (kgw.TLS(cert=client.cert), "needs both cert and key"),
        (kgw.TLS(key=client.key), "needs both cert and key"),
        (kgw.TLS(ca=tmp_path / "missing.crt"), "cannot read"),
        (kgw.TLS(ca=not_pem), "not PEM"),
        (kgw.TLS(ca=b"hello"), "not PEM"),
    ]
    for tls, want in cases:
        with pytest.raises(ValueError, match=want):
            kgw.KailashClient("127.0.0.1:1", tls=tls)
        with pytest.raises(ValueError, match=want):
            kgw.SyncKailashClient("127.0.0.1:1", tls=tls)
