"""Every RPC of the kgw.v1 services has a method in both Python clients.

The RPC list comes from the descriptors of the generated modules, so an RPC
added to the proto without a client method fails here.
"""

from __future__ import annotations

import inspect
import pkgutil
from importlib import import_module

import kgw
import kgw.v1
from kgw import sync

#: RPC full name -> method path on a client ("secrets.store_secret" is client.secrets.store_secret).
CLIENT_METHODS = {
    "kgw.v1.WorkflowService.RegisterWorkflow": "register_workflow",
    "kgw.v1.WorkflowService.GetWorkflow": "get_workflow",
    "kgw.v1.WorkflowService.ListWorkflows": "list_workflows",
    "kgw.v1.WorkflowService.DeleteWorkflow": "delete_workflow",
    "kgw.v1.ExecutionService.ExecuteWorkflow": "execute_workflow",
    "kgw.v1.ExecutionService.StartExecution": "start_execution",
    "kgw.v1.ExecutionService.StreamExecution": "stream_workflow",
    "kgw.v1.ExecutionService.WatchExecution": "watch_execution",
    "kgw.v1.ExecutionService.GetExecution": "get_execution",
    "kgw.v1.ExecutionService.ListExecutions": "list_executions",
    "kgw.v1.ExecutionService.CancelExecution": "cancel_execution",
    "kgw.v1.SecretService.StoreSecret": "secrets.store_secret",
    "kgw.v1.SecretService.GetSecret": "secrets.get_secret",
    "kgw.v1.SecretService.ListSecrets": "secrets.list_secrets",
    "kgw.v1.SecretService.DeleteSecret": "secrets.delete_secret",
    "kgw.v1.SecretService.UpdateSecretAccess": "secrets.update_secret_access",
    "kgw.v1.ResourceService.PutResource": "put_resource",
    "kgw.v1.ResourceService.GetResource": "get_resource",
    "kgw.v1.ResourceService.ListResources": "list_resources",
    "kgw.v1.ResourceService.DeleteResource": "delete_resource",
    "kgw.v1.ResourceService.ListPools": "list_pools",
    "kgw.v1.ResourceService.CheckResource": "check_resource",
    "kgw.v1.AccessService.CreateApiKey": "access.create_api_key",
    "kgw.v1.AccessService.ListApiKeys": "access.list_api_keys",
    "kgw.v1.AccessService.RevokeApiKey": "access.revoke_api_key",
    "kgw.v1.AccessService.CreateRoleBinding": "access.create_role_binding",
    "kgw.v1.AccessService.DeleteRoleBinding": "access.delete_role_binding",
    "kgw.v1.AccessService.ListRoleBindings": "access.list_role_bindings",
    "kgw.v1.AccessService.WhoAmI": "access.whoami",
}

#: List RPCs: each also has an iter_* method that walks every page.
ITERATORS = {
    "kgw.v1.WorkflowService.ListWorkflows": "iter_workflows",
    "kgw.v1.ExecutionService.ListExecutions": "iter_executions",
    "kgw.v1.SecretService.ListSecrets": "secrets.iter_secrets",
    "kgw.v1.ResourceService.ListResources": "iter_resources",
    "kgw.v1.ResourceService.ListPools": "iter_pools",
    "kgw.v1.AccessService.ListApiKeys": "access.iter_api_keys",
    "kgw.v1.AccessService.ListRoleBindings": "access.iter_role_bindings",
}


def _rpcs() -> set[str]:
    found: set[str] = set()
    for info in pkgutil.iter_modules(kgw.v1.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = import_module(f"kgw.v1.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                found.add(method.full_name)
    return found


def _resolve(client: object, path: str) -> object:
    obj = client
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_rpc_has_a_client_method() -> None:
    rpcs = _rpcs()
    assert len(rpcs) >= 20, f"found only {sorted(rpcs)}: are the generated modules installed?"
    missing = sorted(rpcs - CLIENT_METHODS.keys())
    assert not missing, f"RPCs without a Python client method (add one, then list it in CLIENT_METHODS): {missing}"
    stale = sorted(CLIENT_METHODS.keys() - rpcs)
    assert not stale, f"CLIENT_METHODS lists RPCs the proto lacks: {stale}"
    list_rpcs = {r for r in rpcs if r.rsplit(".", 1)[1].startswith("List")}
    assert list_rpcs == ITERATORS.keys(), "every List RPC needs an iter_* method"

    async_client = kgw.KailashClient("127.0.0.1:1")
    sync_client = sync.SyncKailashClient("127.0.0.1:1")
    try:
        for rpc, path in {**CLIENT_METHODS, **{k + " (iter)": v for k, v in ITERATORS.items()}}.items():
            for client in (async_client, sync_client):
                method = _resolve(client, path)
                assert callable(method), f"{type(client).__name__}.{path} for {rpc} is not callable"
                assert inspect.getdoc(method), f"{type(client).__name__}.{path} has no docstring"
            # The async client's unary methods are coroutines; streams and iterators are async iterators.
            async_method = _resolve(async_client, path)
            if "(iter)" not in rpc and path not in ("stream_workflow", "watch_execution"):
                assert inspect.iscoroutinefunction(async_method), f"KailashClient.{path} is not async"
    finally:
        sync_client.close()
