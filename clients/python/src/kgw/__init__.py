"""Python client for Kailash Gateway (kgw), the gRPC workflow gateway.

Quick start::

    import kgw

    async with kgw.KailashClient("127.0.0.1:50051") as client:
        await client.secrets.store_secret("pg", {"user": "app", "password": "s3cret"})
        workflow = (
            kgw.AsyncWorkflowBuilder("hello-database")
            .add_async_code("query", CODE, required_resources=["db"])
            .build()
        )
        await client.register_workflow("hello-database", workflow)
        response = await client.execute_workflow(
            "hello-database",
            resources={"db": client.database(host="127.0.0.1", database="app", credentials_ref="pg")},
        )
        print(response.result["query"]["message"])

The generated protobuf modules are available as ``kgw.v1`` (e.g.
``kgw.v1.workflow_pb2``).
"""

from kgw.builder import AsyncWorkflowBuilder, RetryPolicy, WorkflowBuilder
from kgw._channel import TLS
from kgw._requests import WorkflowRequest
from kgw.client import AsyncAccess, AsyncSecrets, KailashClient
from kgw.errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    ExecutionNotFound,
    FailedPrecondition,
    InvalidArgument,
    InvalidWorkflow,
    KailashError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ResourceNotFound,
    SecretNotFound,
    Unauthenticated,
    Unavailable,
    Violation,
    WorkflowNotFound,
)
from kgw.resources import ResourceSpec, cache, database, http_client, ref
from kgw.sync import SyncKailashClient
from kgw.workflow_file import WorkflowFileError, load_workflow_file, parse_workflow
from kgw.types import (
    ApiKey,
    CheckResult,
    CreatedApiKey,
    Execution,
    ExecutionError,
    ExecutionEvent,
    Identity,
    NamedResource,
    NodeExecution,
    Page,
    Pool,
    RoleBinding,
    Secret,
    WorkflowInfo,
    WorkflowSummary,
)

#: WorkflowResponse is the name the Kailash Python SDK gives what execute_workflow returns.
WorkflowResponse = Execution

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "ApiKey",
    "AsyncAccess",
    "AsyncSecrets",
    "AsyncWorkflowBuilder",
    "Cancelled",
    "CheckResult",
    "CreatedApiKey",
    "DeadlineExceeded",
    "Execution",
    "ExecutionError",
    "ExecutionEvent",
    "ExecutionNotFound",
    "FailedPrecondition",
    "Identity",
    "InvalidArgument",
    "InvalidWorkflow",
    "KailashClient",
    "KailashError",
    "NamedResource",
    "NodeExecution",
    "NotFound",
    "Page",
    "PermissionDenied",
    "Pool",
    "ResourceExhausted",
    "ResourceNotFound",
    "ResourceSpec",
    "RetryPolicy",
    "RoleBinding",
    "Secret",
    "SecretNotFound",
    "SyncKailashClient",
    "TLS",
    "Unauthenticated",
    "Unavailable",
    "Violation",
    "WorkflowBuilder",
    "WorkflowInfo",
    "WorkflowNotFound",
    "WorkflowRequest",
    "WorkflowResponse",
    "WorkflowFileError",
    "WorkflowSummary",
    "cache",
    "database",
    "http_client",
    "load_workflow_file",
    "parse_workflow",
    "ref",
]
