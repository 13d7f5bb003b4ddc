"""What a user coming from the Kailash Python SDK writes first: URL targets,
store_secret(encrypt=True), WorkflowRequest; and the page walker behind the
iter_* methods."""

from __future__ import annotations

import datetime
import warnings
from typing import Any

import pytest

import kgw
from kgw import _calls, _channel
from kgw.types import Page
from kgw.v1 import execution_pb2, secret_pb2


@pytest.mark.parametrize(
    ("target", "tls", "want_address", "want_tls"),
    [
        ("127.0.0.1:50051", None, "127.0.0.1:50051", None),
        ("http://localhost:50051", None, "localhost:50051", None),
        ("http://127.0.0.1:50051/", False, "127.0.0.1:50051", None),
        ("HTTPS://kgw.example.com:8443", None, "kgw.example.com:8443", True),
        ("https://kgw.example.com", None, "kgw.example.com:443", True),
        ("http://kgw.example.com", None, "kgw.example.com:80", None),
        ("https://[::1]:50051", None, "[::1]:50051", True),
        ("dns:///kgw.internal:443", True, "dns:///kgw.internal:443", True),
    ],
)
def test_url_targets(target: str, tls: Any, want_address: str, want_tls: Any) -> None:
    assert _channel.resolve_target(target, tls) == (want_address, want_tls)


def test_https_target_keeps_explicit_tls_settings() -> None:
    settings = kgw.TLS(ca=b"-----BEGIN CERTIFICATE-----")
    assert _channel.resolve_target("https://kgw:443", settings) == ("kgw:443", settings)


@pytest.mark.parametrize(
    ("target", "tls", "message"),
    [
        ("https://kgw:443", False, "is https but tls=False"),
        ("http://kgw:80", True, "is http"),
        ("http://kgw:80/api", None, "no path"),
        ("http://kgw:80?x=1", None, "no path"),
        ("http://user:pw@kgw:80", None, "token="),
        ("http://kgw:http", None, "bad port"),
        ("http://:80", None, "no path"),
    ],
)
def test_bad_url_targets(target: str, tls: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kgw.KailashClient(target, tls=tls)
    with pytest.raises(ValueError, match=message):
        kgw.SyncKailashClient(target, tls=tls)


def test_url_target_error_never_shows_password() -> None:
    with pytest.raises(ValueError) as info:
        kgw.KailashClient("http://user:hunter2@kgw:80")
    assert "hunter2" not in str(info.value)


def test_store_secret_encrypt_is_deprecated() -> None:
    with pytest.warns(DeprecationWarning, match="encrypts every secret"):
        _calls.check_encrypt(True)
    with pytest.raises(ValueError, match="encrypt=False"):
        _calls.check_encrypt(False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _calls.check_encrypt(None)


async def test_store_secret_encrypt_false_refused_before_any_call() -> None:
    async with kgw.KailashClient("127.0.0.1:1") as client:
        with pytest.raises(ValueError, match="encrypt=False"):
            await client.secrets.store_secret("s", {"a": "b"}, encrypt=False)


def test_workflow_request_in_place_of_arguments() -> None:
    request = kgw.WorkflowRequest(
        parameters={"n": 1}, resources={"db": kgw.ref("orders_db")}, context={"tenant": "a"}
    )
    args = _calls.execution_args("wf", request, None, None, 5, "k", 2)
    msg = args.fill(execution_pb2.ExecuteWorkflowRequest())
    assert msg.workflow == "wf" and msg.version == 2 and msg.idempotency_key == "k"
    assert msg.parameters["n"] == 1
    assert msg.context["tenant"] == "a"
    assert msg.resources["db"].ref == "orders_db"
    with pytest.raises(TypeError, match="not both"):
        _calls.execution_args("wf", request, {"db": kgw.ref("x")}, None, None, None, 0)
    with pytest.raises(TypeError, match="not both"):
        _calls.execution_args("wf", request, None, {"a": 1}, None, None, 0)


def test_store_secret_allowed_callers_and_single_string_refused() -> None:
    call = _calls.store_secret("s", {"a": "b"}, None, None, ["db.internal"], "", ["role:executor", "key:abc"])
    assert isinstance(call.request, secret_pb2.StoreSecretRequest)
    assert list(call.request.allowed_callers) == ["role:executor", "key:abc"]
    with pytest.raises(TypeError, match="list of strings"):
        _calls.store_secret("s", {"a": "b"}, None, None, None, "", "role:executor")
    with pytest.raises(TypeError, match="list of strings"):
        _calls.create_role_binding("cert:ops", "admin")


def test_api_key_expiry() -> None:
    from kgw.client import _expiry

    at = datetime.datetime(2030, 1, 2, tzinfo=datetime.timezone.utc)
    assert _expiry(at, None) == at
    assert _expiry(None, None) is None
    soon = _expiry(None, 60)
    assert soon is not None
    assert datetime.timedelta(seconds=50) < soon - datetime.datetime.now(datetime.timezone.utc) <= datetime.timedelta(seconds=60)
    with pytest.raises(ValueError, match="not both"):
        _expiry(at, 60)
    with pytest.raises(ValueError, match="positive"):
        _expiry(None, -1)


def test_created_api_key_repr_hides_the_key() -> None:
    key = kgw.CreatedApiKey(
        kgw.ApiKey(id="abc", name="ci", roles=["executor"], create_time=None, expire_time=None, last_used_time=None, creator=""),
        "kgw_abc_s3cr3tpart",
    )
    assert "s3cr3tpart" not in repr(key)
    assert key.key == "kgw_abc_s3cr3tpart"


def test_page_walk() -> None:
    pages = {"": Page([1, 2], "t1"), "t1": Page([3], "t2"), "t2": Page([], "")}
    seen: list[tuple[int, str]] = []

    def call(size: int, token: str) -> Any:
        seen.append((size, token))
        return token

    walk = _calls.PageWalk(call, 2)
    items: list[int] = []
    while (token := walk.next_call()) is not None:
        page = pages[str(token)]
        walk.saw(page)
        items.extend(page.items)
    assert items == [1, 2, 3]
    assert seen == [(2, ""), (2, "t1"), (2, "t2")]

    walk = _calls.PageWalk(call, 0)
    walk.next_call()
    walk.saw(Page([1], "same"))
    walk.next_call()
    with pytest.raises(RuntimeError, match="same page token twice"):
        walk.saw(Page([1], "same"))
    with pytest.raises(ValueError, match="page_size"):
        _calls.PageWalk(call, 1001)


async def test_unreachable_gateway_names_the_address() -> None:
    async with kgw.KailashClient("http://127.0.0.1:1") as client:
        with pytest.raises(kgw.Unavailable) as info:
            await client.list_workflows()
    text = str(info.value)
    assert "cannot reach the gateway at http://127.0.0.1:1" in text and "kgw serve" in text, text
    assert text.count("cannot reach") == 1
    with kgw.SyncKailashClient("127.0.0.1:1") as sync:
        with pytest.raises(kgw.Unavailable) as sinfo:
            list(sync.watch_execution("x"))
    assert "cannot reach the gateway at 127.0.0.1:1" in str(sinfo.value)
