"""Named resources, pools, checks, paging and WorkflowRequest against a real gateway."""

from __future__ import annotations

import uuid

import pytest

import kgw

from .conftest import REPO_ROOT, Postgres
from .test_gateway import HELLO_CODE, _store_db_secret


async def test_named_resources_pools_and_checks(gateway: str, postgres: Postgres) -> None:
    async with kgw.KailashClient(gateway) as client:
        secret = await _store_db_secret(client, postgres)
        name = f"orders_{uuid.uuid4().hex[:8]}"
        spec = client.database(host=postgres.host, port=postgres.port, database=postgres.database, credentials_ref=secret)
        stored = await client.put_resource(name, spec)
        assert stored.name == name
        assert stored.spec.type == "database" and stored.spec.credentials_ref == secret
        assert stored.config["host"] == postgres.host
        assert postgres.password not in repr(stored)

        got = await client.get_resource(name)
        assert got.spec == stored.spec
        assert name in [r.name async for r in client.iter_resources(page_size=1)]

        healthy = await client.check_resource(name)
        assert healthy.healthy, healthy.message
        assert healthy.latency is not None
        inline = await client.check_resource(spec)
        assert inline.healthy, inline.message
        by_ref = await client.check_resource(client.ref(name))
        assert by_ref.healthy, by_ref.message
        bad = await client.check_resource(
            client.database(host=postgres.host, port=postgres.port, database="no_such_db", credentials_ref=secret)
        )
        assert not bad.healthy and bad.message
        assert postgres.password not in bad.message

        # A workflow through the named resource, with a WorkflowRequest as the Python SDK writes it.
        await client.register_workflow(
            "hello-named", kgw.AsyncWorkflowBuilder("hello-named").add_async_code("query", HELLO_CODE, required_resources=["db"]).build()
        )
        response = await client.execute_workflow("hello-named", kgw.WorkflowRequest(resources={"db": client.ref(name)}))
        assert response.status == "completed", response.error
        assert response.result["query"]["message"] == "Hello from kgw"

        pools = [p async for p in client.iter_pools()]
        assert any(p.type == "database" and p.secret_name == secret for p in pools), pools
        for p in pools:
            assert postgres.password not in repr(p)
        page = await client.list_pools()
        assert len(page) == len(pools) or page.next_page_token

        await client.delete_resource(name)
        with pytest.raises(kgw.ResourceNotFound):
            await client.get_resource(name)

    with kgw.SyncKailashClient(gateway) as sync:
        sync.put_resource(name, spec)
        assert sync.get_resource(name).name == name
        assert name in [r.name for r in sync.iter_resources(page_size=1)]
        assert sync.check_resource(name).healthy
        assert any(p.type == "database" for p in sync.iter_pools())
        sync.delete_resource(name)


async def test_iterators_walk_every_page(gateway: str) -> None:
    prefix = f"page-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{i}" for i in range(5)]
    async with kgw.KailashClient(gateway) as client:
        for n in names:
            await client.register_workflow(n, kgw.AsyncWorkflowBuilder(n).add_async_code("a", "result = {'n': 1}").build())
            await client.secrets.store_secret(n.replace("-", "_"), {"token": "t"})
        first = await client.list_workflows(page_size=2)
        assert len(first) == 2 and first.next_page_token, "one page should not hold every workflow"

        listed = [w.name async for w in client.iter_workflows(page_size=2)]
        assert [n for n in listed if n.startswith(prefix)] == names
        assert len(listed) == len(set(listed)), "an item came twice"
        secrets = [s.name async for s in client.secrets.iter_secrets(page_size=2)]
        assert [s for s in secrets if s.startswith(prefix.replace("-", "_"))] == [n.replace("-", "_") for n in names]

        for n in names:
            await client.execute_workflow(n)
        runs = [e async for e in client.iter_executions(page_size=2)]
        ours = [e for e in runs if e.workflow.startswith(prefix)]
        assert sorted(e.workflow for e in ours) == names
        assert len({e.execution_id for e in runs}) == len(runs)
        only = [e.workflow async for e in client.iter_executions(names[3], "completed", page_size=1)]
        assert only == [names[3]]

    with kgw.SyncKailashClient(gateway) as sync:
        assert [w.name for w in sync.iter_workflows(page_size=2) if w.name.startswith(prefix)] == names
        assert len([e for e in sync.iter_executions(page_size=3) if e.workflow.startswith(prefix)]) == 5


async def test_example_files_register(gateway: str) -> None:
    """Every example workflow file, loaded by the Python client, registers."""
    examples = sorted((REPO_ROOT / "examples").glob("*/workflow*.yaml"))
    assert examples
    async with kgw.KailashClient(gateway) as client:
        for path in examples:
            workflow = kgw.load_workflow_file(path)
            stored = await client.register_workflow(None, workflow)
            assert stored.name == workflow.name, path


async def test_validate_workflow_stores_nothing(gateway: str) -> None:
    name = f"validate-{uuid.uuid4().hex[:6]}"
    good = kgw.AsyncWorkflowBuilder(name).add_async_code("a", "result = {'a': 1}").build()
    async with kgw.KailashClient(gateway) as client:
        checked = await client.validate_workflow(None, good)
        assert checked.name == name and checked.version == 0
        with pytest.raises(kgw.WorkflowNotFound):
            await client.get_workflow(name)
        bad = kgw.AsyncWorkflowBuilder(name).add_async_code("a", "import json").build()
        with pytest.raises(kgw.InvalidWorkflow) as info:
            await client.validate_workflow(None, bad)
        assert any("import" in v.description for v in info.value.violations)
    with kgw.SyncKailashClient(gateway) as sync:
        assert sync.validate_workflow(None, good).version == 0
        assert sync.register_workflow(None, good).version == 1
