"""The Python client against a real `kgw serve` and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid

import pytest

import kgw

from .conftest import REPO_ROOT, Postgres

HELLO_CODE = """\
db = get_resource("db")
msg = db.fetchval("SELECT 'Hello from kgw'")
result = {"message": msg}
"""


def _hello_workflow() -> kgw.v1.workflow_pb2.Workflow:
    return (
        kgw.AsyncWorkflowBuilder("hello-database")
        .add_async_code("query", HELLO_CODE, required_resources=["db"])
        .set_description("reads a greeting from PostgreSQL")
        .build()
    )


async def _store_db_secret(client: kgw.KailashClient, postgres: Postgres) -> str:
    name = f"pg-{uuid.uuid4().hex[:8]}"
    meta = await client.secrets.store_secret(
        name,
        {"user": postgres.user, "password": postgres.password},
        allowed_hosts=[postgres.host],
        description="e2e database login",
    )
    assert meta.name == name
    assert meta.version == 1
    assert meta.keys == ["password", "user"]
    assert postgres.password not in repr(meta)
    return name


async def test_hello_database(gateway: str, postgres: Postgres) -> None:
    async with kgw.KailashClient(gateway) as client:
        secret = await _store_db_secret(client, postgres)
        fetched = await client.secrets.get_secret(secret)
        assert fetched.keys == ["password", "user"]

        stored = await client.register_workflow("hello-database", _hello_workflow())
        assert stored.name == "hello-database"
        assert stored.version >= 1

        response = await client.execute_workflow(
            "hello-database",
            resources={
                "db": client.database(
                    host=postgres.host, port=postgres.port, database=postgres.database, credentials_ref=secret
                )
            },
        )
        assert response.status == "completed", response.error
        assert response.error is None
        assert response.result["query"]["message"] == "Hello from kgw"
        assert [n.node_id for n in response.nodes] == ["query"]
        assert response.nodes[0].status == "completed"

        again = await client.get_execution(response.execution_id)
        assert again.status == "completed"
        assert again.result == response.result


async def test_stream_second_execution_to_terminal_event(gateway: str, postgres: Postgres) -> None:
    async with kgw.KailashClient(gateway) as client:
        secret = await _store_db_secret(client, postgres)
        await client.register_workflow("hello-database", _hello_workflow())
        db = client.database(host=postgres.host, port=postgres.port, database=postgres.database, credentials_ref=secret)

        first = await client.execute_workflow("hello-database", resources={"db": db})
        assert first.status == "completed", first.error

        events = [e async for e in client.stream_workflow("hello-database", resources={"db": db})]
        assert events, "stream ended without events"
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[0].type == "execution_started"
        assert sum(e.terminal for e in events) == 1
        last = events[-1]
        assert last.type == "execution_completed"
        assert last.execution is not None
        assert last.execution.execution_id != first.execution_id
        assert last.execution.result["query"]["message"] == "Hello from kgw"
        completed = [e for e in events if e.type == "node_completed"]
        assert [(e.node_id, e.result) for e in completed] == [("query", {"message": "Hello from kgw"})]

        # The journal replays the same events to a watcher that resumes after seq 1.
        replay = [e async for e in client.watch_execution(last.execution.execution_id, after_seq=1)]
        assert [(e.seq, e.type) for e in replay] == [(e.seq, e.type) for e in events[1:]]


async def test_failed_node_is_a_response_not_an_exception(gateway: str) -> None:
    workflow = kgw.AsyncWorkflowBuilder("always-fails").add_async_code("boom", 'fail("no luck")').build()
    async with kgw.KailashClient(gateway) as client:
        await client.register_workflow("always-fails", workflow)
        response = await client.execute_workflow("always-fails")
    assert response.status == "failed"
    assert response.error is not None
    assert response.error.node_id == "boom"
    assert "no luck" in response.error.message


async def test_concurrent_calls_share_one_channel_and_survive_reopening(gateway: str) -> None:
    workflow = kgw.AsyncWorkflowBuilder("noop").add_async_code("n", "result = {'x': 1}").build()
    client = kgw.KailashClient(gateway)
    await client.register_workflow("noop", workflow)
    results = await asyncio.gather(*(client.execute_workflow("noop") for _ in range(32)))
    assert [r.result for r in results] == [{"n": {"x": 1}}] * 32
    channel = client._channel
    # One multi-callable per method, reused by every call on this channel.
    assert set(client._unary) == {"/kgw.v1.WorkflowService/RegisterWorkflow", "/kgw.v1.ExecutionService/ExecuteWorkflow"}
    await client.close()
    # Reopened: the calls go through a new channel, not callables of the closed one.
    again = await client.execute_workflow("noop")
    assert again.status == "completed"
    assert client._channel is not channel
    assert set(client._unary) == {"/kgw.v1.ExecutionService/ExecuteWorkflow"}
    await client.close()


async def test_unknown_workflow_raises_workflow_not_found(gateway: str) -> None:
    async with kgw.KailashClient(gateway) as client:
        with pytest.raises(kgw.WorkflowNotFound) as info:
            await client.execute_workflow(f"no-such-workflow-{uuid.uuid4().hex[:8]}")
    assert info.value.reason == "WORKFLOW_NOT_FOUND"
    assert isinstance(info.value, kgw.NotFound)


async def test_invalid_workflow_lists_violations(gateway: str) -> None:
    workflow = kgw.AsyncWorkflowBuilder("broken").add_async_code("bad", "result = {'a': }").build()
    async with kgw.KailashClient(gateway) as client:
        with pytest.raises(kgw.InvalidWorkflow) as info:
            await client.register_workflow("broken", workflow)
    assert info.value.violations, "no violations reported"
    assert any("bad" in v.field or "bad" in v.description for v in info.value.violations)


def test_sync_client(gateway: str, postgres: Postgres) -> None:
    with kgw.SyncKailashClient(gateway) as client:
        secret = f"pg-sync-{uuid.uuid4().hex[:8]}"
        client.secrets.store_secret(secret, {"user": postgres.user, "password": postgres.password})
        client.register_workflow("hello-database", _hello_workflow())
        db = client.database(host=postgres.host, port=postgres.port, database=postgres.database, credentials_ref=secret)
        response = client.execute_workflow("hello-database", resources={"db": db})
        assert response.result["query"]["message"] == "Hello from kgw"
        with pytest.raises(kgw.ExecutionNotFound):
            client.get_execution(str(uuid.uuid4()))


_QUICKSTART = re.compile(r"<!-- quickstart:python -->\s*```python\n(.*?)```", re.S)


def _quickstart_sources() -> list[str]:
    return [
        path
        for path in ("docs/clients.md", "README.md")
        if (REPO_ROOT / path).exists() and "<!-- quickstart:python -->" in (REPO_ROOT / path).read_text()
    ]


@pytest.mark.parametrize("doc", _quickstart_sources())
def test_documented_quickstart_runs(doc: str, gateway: str, postgres: Postgres) -> None:
    """Runs the Python quick start exactly as documented, with this test's addresses."""
    match = _QUICKSTART.search((REPO_ROOT / doc).read_text())
    assert match is not None, f"{doc}: no ```python block after <!-- quickstart:python -->"
    code = match.group(1)
    for placeholder, actual in [
        ('"127.0.0.1:50051"', repr(gateway)),
        ("port=5432", f"port={postgres.port}"),
        ('"user": "postgres"', f'"user": {postgres.user!r}'),
        ('"password": "change-me"', f'"password": {postgres.password!r}'),
        ('database="postgres"', f"database={postgres.database!r}"),
    ]:
        assert placeholder in code, f"{doc}: quick start no longer contains {placeholder}"
        code = code.replace(placeholder, actual)
    # Twice: the second run gives the same output, stores no new secret version and closes no pool.
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "Hello from kgw\n"
    with kgw.SyncKailashClient(gateway) as client:
        assert client.secrets.get_secret("app-db").version == 1
        pools = [p for p in client.iter_pools() if p.secret_name == "app-db"]
        assert len(pools) == 1 and not pools[0].draining and pools[0].secret_version == 1, pools


def test_quickstart_is_documented() -> None:
    assert "docs/clients.md" in _quickstart_sources()
