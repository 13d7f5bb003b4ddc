"""Building workflow definitions in the shape of the Kailash Python SDK."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kgw._values import Seconds, to_duration
from kgw.v1 import workflow_pb2

__all__ = ["AsyncWorkflowBuilder", "RetryPolicy", "WorkflowBuilder"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how far apart a failing node is retried.

    ``max_attempts`` counts the first attempt too; unset fields take the
    gateway's defaults (1 s initial backoff, 60 s maximum, multiplier 2).
    """

    max_attempts: int
    initial_backoff: Seconds | None = None
    max_backoff: Seconds | None = None
    multiplier: float | None = None

    def to_proto(self) -> workflow_pb2.RetryPolicy:
        """Converts the policy to its message."""
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        msg = workflow_pb2.RetryPolicy(max_attempts=self.max_attempts)
        initial = to_duration(self.initial_backoff)
        if initial is not None:
            msg.initial_backoff.CopyFrom(initial)
        maximum = to_duration(self.max_backoff)
        if maximum is not None:
            msg.max_backoff.CopyFrom(maximum)
        if self.multiplier is not None:
            msg.multiplier = self.multiplier
        return msg


class AsyncWorkflowBuilder:
    """Builds a workflow: a DAG of Starlark code nodes and the connections between them.

    Every method but :meth:`build` returns the builder, so calls chain::

        workflow = (
            AsyncWorkflowBuilder("hello-database")
            .add_async_code("query", code, required_resources=["db"])
            .build()
        )

    The gateway validates the definition completely when it is registered
    (code that does not compile, cycles, unknown resources); :meth:`build`
    only catches the mistakes it can see without the server: duplicate node
    ids and connections that name unknown nodes. A builder is not safe for
    concurrent use.
    """

    def __init__(self, name: str, description: str = "") -> None:
        self._workflow = workflow_pb2.Workflow(name=name, description=description)
        self._ids: set[str] = set()

    def add_async_code(
        self,
        node_id: str,
        code: str,
        *,
        required_resources: Iterable[str] | None = None,
        timeout: Seconds | None = None,
        retry: int | RetryPolicy | None = None,
        description: str = "",
    ) -> AsyncWorkflowBuilder:
        """Adds a code node.

        Args:
            node_id: unique id of the node; its output appears as ``result[node_id]``.
            code: Starlark source; the top-level variable ``result`` (a dict) is the output.
            required_resources: names of the request resources the node may open with
                ``get_resource(name)``.
            timeout: limit for one attempt (seconds or timedelta); the gateway's default is 30 s.
            retry: total attempts as an int, or a RetryPolicy.
            description: human-readable description.
        """
        if node_id in self._ids:
            raise ValueError(f"duplicate node id {node_id!r}")
        node = self._workflow.nodes.add(id=node_id, code=code, description=description)
        node.required_resources.extend(required_resources or ())
        duration = to_duration(timeout)
        if duration is not None:
            node.timeout.CopyFrom(duration)
        if retry is not None:
            policy = RetryPolicy(max_attempts=retry) if isinstance(retry, int) else retry
            node.retry.CopyFrom(policy.to_proto())
        self._ids.add(node_id)
        return self

    #: ``add_code`` is ``add_async_code``: every gateway node is the same kind.
    add_code = add_async_code

    def add_connection(
        self,
        from_node: str,
        from_output: str | None,
        to_node: str,
        to_input: str | None = None,
    ) -> AsyncWorkflowBuilder:
        """Connects an upstream node's result to a downstream node.

        With ``from_output="x"`` the upstream ``result["x"]`` becomes the
        variable ``to_input`` (or ``x`` when ``to_input`` is None). With
        ``from_output=None`` (the SDK's ``None, None``) every key of the
        upstream result, and everything that node received the same way,
        becomes a variable of the same name ("pass all").
        """
        self._workflow.connections.add(
            from_node=from_node,
            from_output=from_output or "",
            to_node=to_node,
            to_input=to_input or "",
        )
        return self

    def set_description(self, description: str) -> AsyncWorkflowBuilder:
        """Sets the workflow's description."""
        self._workflow.description = description
        return self

    def set_timeout(self, timeout: Seconds) -> AsyncWorkflowBuilder:
        """Sets the limit for a whole execution (the gateway's default is 300 s)."""
        duration = to_duration(timeout)
        assert duration is not None
        self._workflow.timeout.CopyFrom(duration)
        return self

    def set_labels(self, labels: Mapping[str, str]) -> AsyncWorkflowBuilder:
        """Replaces the workflow's labels."""
        self._workflow.labels.clear()
        self._workflow.labels.update(labels)
        return self

    def disable_journal(self, disabled: bool = True) -> AsyncWorkflowBuilder:
        """Runs executions without journalling: faster, but neither recovered after a
        restart nor watchable once they end. Only for side-effect-free work."""
        self._workflow.disable_journal = disabled
        return self

    def build(self) -> workflow_pb2.Workflow:
        """Returns the definition as a ``kgw.v1.Workflow`` message (a copy).

        Raises ValueError when the workflow has no nodes or a connection
        names a node that was not added.
        """
        if not self._ids:
            raise ValueError(f"workflow {self._workflow.name!r} has no nodes")
        for conn in self._workflow.connections:
            for end in (conn.from_node, conn.to_node):
                if end not in self._ids:
                    raise ValueError(
                        f"connection {conn.from_node!r} -> {conn.to_node!r} names unknown node {end!r}"
                    )
        out = workflow_pb2.Workflow()
        out.CopyFrom(self._workflow)
        return out


#: WorkflowBuilder is AsyncWorkflowBuilder under the SDK's other name.
WorkflowBuilder = AsyncWorkflowBuilder
