"""Plain Python views of the gateway's messages.

The client converts every response into these frozen dataclasses: statuses
become lower-case strings (``"completed"``), Structs become dicts of plain
values, Timestamps become aware UTC datetimes and Durations timedeltas.
Each object keeps the message it was made from in ``proto`` for anything the
view leaves out.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar


from kgw._values import from_duration, from_struct, from_timestamp
from kgw.v1 import access_pb2, execution_pb2, resource_pb2, secret_pb2, workflow_pb2

__all__ = [
    "ApiKey",
    "CheckResult",
    "CreatedApiKey",
    "EventType",
    "Execution",
    "ExecutionError",
    "ExecutionEvent",
    "ExecutionStatus",
    "Identity",
    "NamedResource",
    "NodeExecution",
    "NodeStatus",
    "Page",
    "Pool",
    "RoleBinding",
    "Secret",
    "TERMINAL_STATUSES",
    "WorkflowInfo",
    "WorkflowSummary",
]

#: The status of an execution, as execute_workflow and get_execution report it.
ExecutionStatus = Literal["pending", "running", "completed", "failed", "cancelled", "timed_out", "unspecified"]

#: The status of one node of an execution.
NodeStatus = Literal[
    "pending", "running", "retrying", "completed", "failed", "skipped", "cancelled", "timed_out", "unspecified"
]

#: The kind of an execution event.
EventType = Literal[
    "execution_started",
    "node_started",
    "node_log",
    "node_retrying",
    "node_completed",
    "node_failed",
    "execution_completed",
    "execution_failed",
    "execution_cancelled",
    "execution_timed_out",
    "unknown",
]

#: Statuses after which an execution never changes again.
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "timed_out"})

#: Event types that end an execution; each carries the final execution.
_TERMINAL_EVENTS: tuple[EventType, ...] = (
    "execution_completed",
    "execution_failed",
    "execution_cancelled",
    "execution_timed_out",
)

_T = TypeVar("_T")


def _enum_name(prefix: str, name: str) -> str:
    return name[len(prefix) :].lower() if name.startswith(prefix) else name.lower()


def _enum_names(enum: Any, prefix: str) -> dict[int, str]:
    """Lower-case names of an enum's values, computed once (a lookup per
    conversion instead of a scan of the enum's values)."""
    return {value: _enum_name(prefix, name) or "unspecified" for name, value in enum.items()}


_EXECUTION_STATUS_NAMES = _enum_names(execution_pb2.ExecutionStatus, "EXECUTION_STATUS_")
_NODE_STATUS_NAMES = _enum_names(execution_pb2.NodeStatus, "NODE_STATUS_")


def execution_status_name(value: int) -> ExecutionStatus:
    """Returns the lower-case name of an ExecutionStatus enum value ("unspecified" for unknown values)."""
    return _EXECUTION_STATUS_NAMES.get(value, "unspecified")  # type: ignore[return-value]


def execution_status_value(name: str) -> int:
    """Returns the ExecutionStatus enum value for a lower-case name such as "failed"."""
    try:
        return execution_pb2.ExecutionStatus.Value("EXECUTION_STATUS_" + name.upper())
    except ValueError:
        raise ValueError(
            f"unknown execution status {name!r}; use one of pending, running, completed, failed, cancelled, timed_out"
        ) from None


def _node_status_name(value: int) -> NodeStatus:
    return _NODE_STATUS_NAMES.get(value, "unspecified")  # type: ignore[return-value]


@dataclass(frozen=True)
class ExecutionError:
    """Why a node or an execution failed."""

    node_id: str
    code: str
    message: str
    traceback: str

    @classmethod
    def from_proto(cls, msg: execution_pb2.ExecutionError) -> ExecutionError:
        """Converts an ExecutionError message."""
        return cls(node_id=msg.node_id, code=msg.code, message=msg.message, traceback=msg.traceback)

    def __str__(self) -> str:
        # The gateway's message already names the node ("node 'q' failed at
        # 2:5: ..."): adding it again would read "node 'q': node 'q' ...".
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class NodeExecution:
    """The state of one node within an execution."""

    node_id: str
    status: NodeStatus
    attempts: int
    start_time: datetime.datetime | None
    end_time: datetime.datetime | None
    duration: datetime.timedelta | None
    error: ExecutionError | None

    @classmethod
    def from_proto(cls, msg: execution_pb2.NodeExecution) -> NodeExecution:
        """Converts a NodeExecution message."""
        return cls(
            node_id=msg.node_id,
            status=_node_status_name(msg.status),
            attempts=msg.attempts,
            start_time=from_timestamp(msg.start_time, msg.HasField("start_time")),
            end_time=from_timestamp(msg.end_time, msg.HasField("end_time")),
            duration=from_duration(msg.duration, msg.HasField("duration")),
            error=ExecutionError.from_proto(msg.error) if msg.HasField("error") else None,
        )


@dataclass(frozen=True)
class Execution:
    """One run of one workflow version: what ``execute_workflow`` returns.

    ``result`` maps node id to that node's ``result`` dict, so
    ``execution.result["query"]["message"]`` reads the ``message`` key of
    node ``query``. A failed run has ``status == "failed"`` and an ``error``.
    """

    execution_id: str
    workflow: str
    version: int
    status: ExecutionStatus
    result: dict[str, dict[str, Any]]
    error: ExecutionError | None
    nodes: list[NodeExecution]
    create_time: datetime.datetime | None
    start_time: datetime.datetime | None
    end_time: datetime.datetime | None
    idempotency_key: str
    proto: execution_pb2.Execution = field(repr=False, compare=False)

    @property
    def id(self) -> str:
        """The execution id (same as ``execution_id``)."""
        return self.execution_id

    @property
    def done(self) -> bool:
        """True when the execution has ended (completed, failed, cancelled or timed out)."""
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        """True when every node completed."""
        return self.status == "completed"

    @classmethod
    def from_proto(cls, msg: execution_pb2.Execution) -> Execution:
        """Converts an Execution message.

        Every field is converted from ``proto`` when first read, then stored
        in the instance (see ``_Converted``): a caller that reads
        ``status`` pays for the status only, one that reads ``result`` for
        the result when it reads it. Reading a field of a freshly decoded
        message is what costs (the protobuf runtime builds its wrappers on
        first access): converting status, ids, result and error at once
        took 2.2 µs of a fresh no-op response (timeit), reading the status
        this way 0.8 µs. With the cheaper request path of the same change
        (kgw._calls.execute_workflow), the loadgen Python driver (16
        callers, one channel, no-op workflow; docs/performance.md, section
        Clients): client CPU per call, median of 9 paired loadgen cycles on
        the loaded 2-core machine, 89 -> 79 µs (-11%; bare grpc.aio 78 µs);
        8 alternations of the driver alone, 89 -> 82 µs (-8%). The
        client's own work without the network: 6.9 -> 3.8 µs per call.
        """
        out = object.__new__(cls)
        object.__setattr__(out, "proto", msg)
        return out


class _Converted:
    """A field of :class:`Execution` converted from its ``proto`` when first
    read; the value is then stored in the instance, where later reads find
    it without calling this (a non-data descriptor yields to the instance
    dict). An Execution made by its constructor has every field in its
    dict and never reaches this."""

    __slots__ = ("_name", "_convert")

    def __init__(self, name: str, convert: Callable[[execution_pb2.Execution], Any]) -> None:
        self._name = name
        self._convert = convert

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        fields = obj.__dict__
        msg = fields.get("proto")
        if msg is None:
            raise AttributeError(f"{type(obj).__name__!r} object has no attribute {self._name!r}")
        value = fields[self._name] = self._convert(msg)
        return value


def _result(msg: execution_pb2.Execution) -> dict[str, dict[str, Any]]:
    results = msg.result  # keys, then lookups: a third of the cost of .items() on a protobuf map
    return {node: from_struct(results[node]) for node in results}


# Set after the dataclass is made, so that they are not taken for defaults.
for _name, _convert in (
    ("execution_id", lambda msg: msg.id),
    ("workflow", lambda msg: msg.workflow),
    ("version", lambda msg: msg.version),
    ("status", lambda msg: _EXECUTION_STATUS_NAMES.get(msg.status, "unspecified")),
    ("result", _result),
    ("error", lambda msg: ExecutionError.from_proto(msg.error) if msg.HasField("error") else None),
    ("nodes", lambda msg: [NodeExecution.from_proto(n) for n in msg.nodes]),
    ("create_time", lambda msg: from_timestamp(msg.create_time, msg.HasField("create_time"))),
    ("start_time", lambda msg: from_timestamp(msg.start_time, msg.HasField("start_time"))),
    ("end_time", lambda msg: from_timestamp(msg.end_time, msg.HasField("end_time"))),
    ("idempotency_key", lambda msg: msg.idempotency_key),
):
    setattr(Execution, _name, _Converted(_name, _convert))
del _name, _convert


@dataclass(frozen=True)
class ExecutionEvent:
    """One step of an execution, as stream_workflow and watch_execution yield it.

    ``type`` says what happened; the fields that apply to it are set and the
    others are None:

    ============================  ===================================================
    type                          fields
    ============================  ===================================================
    execution_started             workflow, version, resumed
    node_started                  node_id, attempt
    node_log                      node_id, attempt, level, message, fields
    node_retrying                 node_id, attempt, error, backoff
    node_completed                node_id, attempt, result, duration
    node_failed                   node_id, attempt, error
    execution_completed / _failed execution (the final Execution); ``terminal`` is True
    / _cancelled / _timed_out
    ============================  ===================================================
    """

    execution_id: str
    seq: int
    time: datetime.datetime | None
    type: EventType
    node_id: str | None = None
    attempt: int | None = None
    workflow: str | None = None
    version: int | None = None
    resumed: bool | None = None
    level: str | None = None
    message: str | None = None
    fields: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: ExecutionError | None = None
    backoff: datetime.timedelta | None = None
    duration: datetime.timedelta | None = None
    execution: Execution | None = None
    proto: execution_pb2.ExecutionEvent | None = field(default=None, repr=False, compare=False)

    @property
    def terminal(self) -> bool:
        """True for the last event of an execution (it carries ``execution``)."""
        return self.type in _TERMINAL_EVENTS

    @classmethod
    def from_proto(cls, msg: execution_pb2.ExecutionEvent) -> ExecutionEvent:
        """Converts an ExecutionEvent message."""
        base: dict[str, Any] = {
            "execution_id": msg.execution_id,
            "seq": msg.seq,
            "time": from_timestamp(msg.time, msg.HasField("time")),
            "proto": msg,
        }
        kind = msg.WhichOneof("event")
        if kind == "execution_started":
            s = msg.execution_started
            return cls(type="execution_started", workflow=s.workflow, version=s.version, resumed=s.resumed, **base)
        if kind == "node_started":
            ns = msg.node_started
            return cls(type="node_started", node_id=ns.node_id, attempt=ns.attempt, **base)
        if kind == "node_log":
            lg = msg.node_log
            return cls(
                type="node_log",
                node_id=lg.node_id,
                attempt=lg.attempt,
                level=_enum_name("LOG_LEVEL_", execution_pb2.LogLevel.Name(lg.level))
                if lg.level in execution_pb2.LogLevel.values()
                else "unspecified",
                message=lg.message,
                fields=from_struct(lg.fields),
                **base,
            )
        if kind == "node_retrying":
            r = msg.node_retrying
            return cls(
                type="node_retrying",
                node_id=r.node_id,
                attempt=r.attempt,
                error=ExecutionError.from_proto(r.error) if r.HasField("error") else None,
                backoff=from_duration(r.backoff, r.HasField("backoff")),
                **base,
            )
        if kind == "node_completed":
            c = msg.node_completed
            return cls(
                type="node_completed",
                node_id=c.node_id,
                attempt=c.attempt,
                result=from_struct(c.result),
                duration=from_duration(c.duration, c.HasField("duration")),
                **base,
            )
        if kind == "node_failed":
            f = msg.node_failed
            return cls(
                type="node_failed",
                node_id=f.node_id,
                attempt=f.attempt,
                error=ExecutionError.from_proto(f.error) if f.HasField("error") else None,
                **base,
            )
        if kind in _TERMINAL_EVENTS:
            ended = getattr(msg, kind)  # ExecutionCompleted, ExecutionFailed, … each carry the final execution
            return cls(type=kind, execution=Execution.from_proto(ended.execution), **base)
        return cls(type="unknown", **base)


@dataclass(frozen=True)
class Secret:
    """Metadata of one secret version. The value is never returned by the gateway."""

    name: str
    version: int
    keys: list[str]
    description: str
    create_time: datetime.datetime | None
    expire_time: datetime.datetime | None
    allowed_hosts: list[str]
    allowed_callers: list[str] = field(default_factory=list)
    creator: str = ""

    @classmethod
    def from_proto(cls, msg: secret_pb2.Secret) -> Secret:
        """Converts a Secret message."""
        return cls(
            name=msg.name,
            version=msg.version,
            keys=list(msg.keys),
            description=msg.description,
            create_time=from_timestamp(msg.create_time, msg.HasField("create_time")),
            expire_time=from_timestamp(msg.expire_time, msg.HasField("expire_time")),
            allowed_hosts=list(msg.allowed_hosts),
            allowed_callers=list(msg.allowed_callers),
            creator=msg.creator,
        )


@dataclass(frozen=True)
class WorkflowInfo:
    """A stored workflow version, as register_workflow and get_workflow return it."""

    name: str
    version: int
    description: str
    node_ids: list[str]
    timeout: datetime.timedelta | None
    labels: dict[str, str]
    create_time: datetime.datetime | None
    proto: workflow_pb2.Workflow = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, msg: workflow_pb2.Workflow) -> WorkflowInfo:
        """Converts a Workflow message."""
        return cls(
            name=msg.name,
            version=msg.version,
            description=msg.description,
            node_ids=[n.id for n in msg.nodes],
            timeout=from_duration(msg.timeout, msg.HasField("timeout")),
            labels=dict(msg.labels),
            create_time=from_timestamp(msg.create_time, msg.HasField("create_time")),
            proto=msg,
        )


@dataclass(frozen=True)
class WorkflowSummary:
    """One entry of list_workflows."""

    name: str
    latest_version: int
    description: str
    node_count: int
    required_resources: list[str]
    labels: dict[str, str]
    create_time: datetime.datetime | None

    @classmethod
    def from_proto(cls, msg: workflow_pb2.WorkflowSummary) -> WorkflowSummary:
        """Converts a WorkflowSummary message."""
        return cls(
            name=msg.name,
            latest_version=msg.latest_version,
            description=msg.description,
            node_count=msg.node_count,
            required_resources=list(msg.required_resources),
            labels=dict(msg.labels),
            create_time=from_timestamp(msg.create_time, msg.HasField("create_time")),
        )


@dataclass(frozen=True)
class Page(Generic[_T]):
    """One page of a list RPC. Iterate it for the items; pass ``next_page_token``
    as ``page_token`` to get the next page ("" means this was the last)."""

    items: Sequence[_T]
    next_page_token: str

    def __iter__(self) -> Iterator[_T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)




@dataclass(frozen=True)
class NamedResource:
    """A server-side named resource (get_resource, list_resources): requests use it with ``client.ref(name)``."""

    name: str
    spec: resource_pb2.ResourceSpec
    create_time: datetime.datetime | None
    update_time: datetime.datetime | None
    allowed_callers: list[str]
    creator: str

    @classmethod
    def from_proto(cls, msg: resource_pb2.Resource) -> NamedResource:
        """Converts a Resource message."""
        return cls(
            name=msg.name,
            spec=msg.spec,
            create_time=from_timestamp(msg.create_time, msg.HasField("create_time")),
            update_time=from_timestamp(msg.update_time, msg.HasField("update_time")),
            allowed_callers=list(msg.allowed_callers),
            creator=msg.creator,
        )

    @property
    def config(self) -> dict[str, Any]:
        """The spec's config as plain values (never credentials: those stay in the secret)."""
        return from_struct(self.spec.config)


@dataclass(frozen=True)
class Pool:
    """The live state of one connection pool (list_pools); never carries credentials."""

    key: str
    type: str
    target: str
    secret_name: str
    secret_version: int
    size: int
    idle: int
    in_use: int
    max_size: int
    acquire_count: int
    acquire_wait: datetime.timedelta | None
    error_count: int
    last_error: str
    draining: bool

    @classmethod
    def from_proto(cls, msg: resource_pb2.Pool) -> Pool:
        """Converts a Pool message."""
        return cls(
            key=msg.key,
            type=msg.type,
            target=msg.target,
            secret_name=msg.secret_name,
            secret_version=msg.secret_version,
            size=msg.size,
            idle=msg.idle,
            in_use=msg.in_use,
            max_size=msg.max_size,
            acquire_count=msg.acquire_count,
            acquire_wait=from_duration(msg.acquire_wait, msg.HasField("acquire_wait")),
            error_count=msg.error_count,
            last_error=msg.last_error,
            draining=msg.draining,
        )


@dataclass(frozen=True)
class CheckResult:
    """The outcome of check_resource: an unhealthy resource is a result, not an exception."""

    healthy: bool
    message: str
    latency: datetime.timedelta | None

    @classmethod
    def from_proto(cls, msg: resource_pb2.CheckResourceResponse) -> CheckResult:
        """Converts a CheckResourceResponse."""
        return cls(
            healthy=msg.healthy,
            message=msg.message,
            latency=from_duration(msg.latency, msg.HasField("latency")),
        )


@dataclass(frozen=True)
class ApiKey:
    """Metadata of an API key; never the key itself."""

    id: str
    name: str
    roles: list[str]
    create_time: datetime.datetime | None
    expire_time: datetime.datetime | None
    last_used_time: datetime.datetime | None
    creator: str

    @classmethod
    def from_proto(cls, msg: access_pb2.ApiKey) -> ApiKey:
        """Converts an ApiKey message."""
        return cls(
            id=msg.id,
            name=msg.name,
            roles=list(msg.roles),
            create_time=from_timestamp(msg.create_time, msg.HasField("create_time")),
            expire_time=from_timestamp(msg.expire_time, msg.HasField("expire_time")),
            last_used_time=from_timestamp(msg.last_used_time, msg.HasField("last_used_time")),
            creator=msg.creator,
        )


@dataclass(frozen=True)
class CreatedApiKey:
    """What create_api_key returns: the metadata and the key (``kgw_<id>_<secret>``),
    which the gateway never shows again. ``repr`` hides the key."""

    api_key: ApiKey
    key: str = field(repr=False)


@dataclass(frozen=True)
class RoleBinding:
    """Roles given to a principal or a principal pattern ending in ``*``."""

    id: str
    principal: str
    roles: list[str]
    create_time: datetime.datetime | None
    creator: str

    @classmethod
    def from_proto(cls, msg: access_pb2.RoleBinding) -> RoleBinding:
        """Converts a RoleBinding message."""
        return cls(
            id=msg.id,
            principal=msg.principal,
            roles=list(msg.roles),
            create_time=from_timestamp(msg.create_time, msg.HasField("create_time")),
            creator=msg.creator,
        )


@dataclass(frozen=True)
class Identity:
    """Who the gateway thinks the caller is (whoami)."""

    principal: str
    roles: list[str]
    method: str

    @classmethod
    def from_proto(cls, msg: access_pb2.WhoAmIResponse) -> Identity:
        """Converts a WhoAmIResponse."""
        return cls(principal=msg.principal, roles=list(msg.roles), method=msg.method)
