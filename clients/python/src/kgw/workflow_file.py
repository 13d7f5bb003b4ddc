"""Workflow files: YAML or JSON definitions with code inline or in ``code_file``s.

The format is the one ``kgw workflow register -f`` and the Go client read
(docs/workflow-files.md)::

    workflow = kgw.load_workflow_file("examples/hello_db/workflow.yaml")
    await client.register_workflow(None, workflow)

JSON needs nothing more; YAML needs PyYAML (``pip install 'kgw[yaml]'``).
Every problem is reported at once in a :class:`WorkflowFileError`, by field
path (``nodes[0].retry.max_attempts``); unknown fields, fields given twice,
and values of the wrong type are errors.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from google.protobuf import duration_pb2

from kgw.v1 import workflow_pb2

__all__ = ["WorkflowFileError", "load_workflow_file", "parse_workflow"]

#: Largest workflow file and code file read.
MAX_FILE_BYTES = 8 << 20
MAX_CODE_FILE_BYTES = 1 << 20

_WORKFLOW_FIELDS = ("name", "description", "timeout", "labels", "disable_journal", "nodes", "connections")
_NODE_FIELDS = ("id", "code", "code_file", "required_resources", "timeout", "retry", "description")
_RETRY_FIELDS = ("max_attempts", "initial_backoff", "max_backoff", "multiplier")
_CONNECTION_FIELDS = ("from_node", "from_output", "to_node", "to_input", "from", "to")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class WorkflowFileError(ValueError):
    """A workflow file that cannot be loaded; ``problems`` lists every
    ``(field, message)`` found, and ``path`` names the file (or "")."""

    def __init__(self, path: str, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        prefix = f"{path}: " if path else ""
        super().__init__("\n".join(f"{prefix}{field}: {message}" if field else f"{prefix}{message}" for field, message in problems))


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"field {key!r} given twice")
        out[key] = value
    return out


def _load_yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ImportError("reading YAML workflow files needs PyYAML: pip install 'kgw[yaml]' (or use JSON)") from None

    class StrictLoader(yaml.SafeLoader):
        pass

    def mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: merge keys (<<) are not supported")
            key = loader.construct_object(key_node, deep=deep)
            if key in out:
                raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: field {key!r} given twice")
            out[key] = loader.construct_object(value_node, deep=deep)
        return out

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        docs = list(yaml.load_all(text, Loader=StrictLoader))  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ValueError(f"not valid YAML: {err}") from None
    if len(docs) != 1:
        raise ValueError(f"a workflow file holds exactly one YAML document, found {len(docs)}")
    return docs[0]


def parse_workflow(data: str | bytes, format: str = "yaml", base_dir: str | os.PathLike[str] | None = None, *, path: str = "") -> workflow_pb2.Workflow:
    """Parses a workflow definition from ``data`` (``format`` "yaml" or "json").
    ``code_file`` paths are relative to ``base_dir`` (default: the working
    directory). Raises :class:`WorkflowFileError`."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        if format == "json":
            doc = json.loads(text, object_pairs_hook=_no_duplicates)
        elif format in ("yaml", "yml"):
            doc = _load_yaml(text)
        else:
            raise WorkflowFileError(path, [("", f"unknown format {format!r}: want yaml or json")])
    except (_DuplicateKey, ValueError) as err:
        if isinstance(err, WorkflowFileError):
            raise
        raise WorkflowFileError(path, [("", str(err))]) from None
    decoder = _Decoder(Path(base_dir) if base_dir is not None else Path.cwd())
    workflow = decoder.workflow(doc)
    if decoder.problems:
        raise WorkflowFileError(path, decoder.problems)
    return workflow


def load_workflow_file(path: str | os.PathLike[str]) -> workflow_pb2.Workflow:
    """Loads a workflow file: YAML (``.yaml``/``.yml``, needs ``kgw[yaml]``) or
    JSON (``.json``), with ``code_file`` paths relative to the file's directory.
    Raises :class:`WorkflowFileError` (or ``OSError`` when it cannot be read)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise WorkflowFileError(str(p), [("", "want a .yaml, .yml or .json file")])
    if p.stat().st_size > MAX_FILE_BYTES:
        raise WorkflowFileError(str(p), [("", f"larger than {MAX_FILE_BYTES >> 20} MiB")])
    return parse_workflow(p.read_bytes(), "json" if suffix == ".json" else "yaml", p.parent, path=str(p))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


class _Decoder:
    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.problems: list[tuple[str, str]] = []

    def problem(self, field: str, message: str) -> None:
        self.problems.append((field, message))

    def fields(self, value: Any, path: str, what: str, known: tuple[str, ...]) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.problem(path, f"want {what} (a mapping), got {_kind(value)}")
            return None
        for key in value:
            if key not in known:
                self.problem(
                    f"{path}.{key}" if path else str(key),
                    f"unknown field {key!r} in {what} (known fields: {', '.join(sorted(known))})",
                )
        return value

    def string(self, value: Any, field: str) -> str:
        if not isinstance(value, str):
            self.problem(field, f"want a string, got {_kind(value)}")
            return ""
        return value

    def duration(self, value: Any, field: str) -> duration_pb2.Duration | None:
        seconds: float
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            self.problem(field, f'want a duration such as "30s" or a number of seconds, got {_kind(value)}')
            return None
        if isinstance(value, str):
            text = value.strip()
            sign = -1.0 if text.startswith("-") else 1.0
            body = text.lstrip("+-")
            if body == "0":
                seconds = 0.0
            elif not body or _DURATION.sub("", body) != "":
                self.problem(field, f'bad duration {value!r}: want e.g. "30s", "1m30s", "500ms" or a number of seconds')
                return None
            else:
                seconds = sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(body))
        else:
            seconds = float(value)
        if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
            self.problem(field, f"duration must not be negative, got {value!r}")
            return None
        if seconds == 0:
            return None
        whole = math.floor(seconds)
        return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))

    def strings(self, value: Any, field: str) -> list[str]:
        if not isinstance(value, list):
            self.problem(field, f"want a list of strings, got {_kind(value)}")
            return []
        return [self.string(v, f"{field}[{i}]") for i, v in enumerate(value)]

    def workflow(self, doc: Any) -> workflow_pb2.Workflow:
        wf = workflow_pb2.Workflow()
        root = self.fields(doc, "", "a workflow", _WORKFLOW_FIELDS)
        if root is None:
            return wf
        handlers: dict[str, Callable[[Any], None]] = {
            "name": lambda v: setattr(wf, "name", self.string(v, "name")),
            "description": lambda v: setattr(wf, "description", self.string(v, "description")),
            "timeout": lambda v: self._set_duration(wf, "timeout", v, "timeout"),
            "labels": lambda v: self._labels(wf, v),
            "disable_journal": lambda v: self._bool(wf, "disable_journal", v),
            "nodes": lambda v: self._list(v, "nodes", lambda item, f: wf.nodes.append(self.node(item, f))),
            "connections": lambda v: self._list(
                v, "connections", lambda item, f: wf.connections.append(self.connection(item, f))
            ),
        }
        for key, value in root.items():
            if key in handlers:
                handlers[key](value)
        if not wf.name and "name" not in root:
            self.problem("name", "missing: every workflow needs a name")
        if not root.get("nodes"):
            self.problem("nodes", "missing: a workflow needs at least one node")
        self._structure(wf)
        return wf

    def _set_duration(self, msg: Any, attr: str, value: Any, field: str) -> None:
        d = self.duration(value, field)
        if d is not None:
            getattr(msg, attr).CopyFrom(d)

    def _bool(self, msg: Any, attr: str, value: Any) -> None:
        if not isinstance(value, bool):
            self.problem(attr, f"want true or false, got {_kind(value)}")
            return
        setattr(msg, attr, value)

    def _labels(self, wf: workflow_pb2.Workflow, value: Any) -> None:
        if not isinstance(value, Mapping):
            self.problem("labels", f"want a mapping of text, got {_kind(value)}")
            return
        for key, v in value.items():
            if isinstance(v, bool):
                wf.labels[str(key)] = "true" if v else "false"
            elif isinstance(v, (str, int, float)):
                wf.labels[str(key)] = str(v)
            else:
                self.problem(f"labels.{key}", f"want text, got {_kind(v)}")

    def _list(self, value: Any, field: str, each: Callable[[Any, str], None]) -> None:
        if not isinstance(value, list):
            self.problem(field, f"want a list, got {_kind(value)}")
            return
        for i, item in enumerate(value):
            each(item, f"{field}[{i}]")

    def node(self, value: Any, path: str) -> workflow_pb2.Node:
        node = workflow_pb2.Node()
        m = self.fields(value, path, "a node", _NODE_FIELDS)
        if m is None:
            return node
        if "id" in m:
            node.id = self.string(m["id"], f"{path}.id")
        else:
            self.problem(f"{path}.id", "missing: every node needs an id")
        if ("code" in m) == ("code_file" in m):
            self.problem(path, "give exactly one of code or code_file")
        if "code" in m:
            node.code = self.string(m["code"], f"{path}.code")
        if "code_file" in m:
            node.code = self._code_file(self.string(m["code_file"], f"{path}.code_file"), f"{path}.code_file")
        if "required_resources" in m:
            node.required_resources.extend(self.strings(m["required_resources"], f"{path}.required_resources"))
        if "timeout" in m:
            self._set_duration(node, "timeout", m["timeout"], f"{path}.timeout")
        if "description" in m:
            node.description = self.string(m["description"], f"{path}.description")
        if "retry" in m:
            r = self.fields(m["retry"], f"{path}.retry", "a retry policy", _RETRY_FIELDS)
            if r is not None:
                self._retry(node.retry, r, f"{path}.retry")
        return node

    def _retry(self, retry: workflow_pb2.RetryPolicy, r: Mapping[str, Any], path: str) -> None:
        if "max_attempts" in r:
            v = r["max_attempts"]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                self.problem(f"{path}.max_attempts", f"want a whole number >= 1, got {v!r}")
            else:
                retry.max_attempts = v
        for key in ("initial_backoff", "max_backoff"):
            if key in r:
                self._set_duration(retry, key, r[key], f"{path}.{key}")
        if "multiplier" in r:
            v = r["multiplier"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (v != 0 and v < 1):
                self.problem(f"{path}.multiplier", f"want 0 (the default, 2) or a number >= 1, got {v!r}")
            else:
                retry.multiplier = float(v)

    def _code_file(self, name: str, field: str) -> str:
        if not name:
            return ""
        p = Path(name)
        if not p.is_absolute():
            p = self.base_dir / p
        try:
            if not p.is_file():
                self.problem(field, f"{name}: not a regular file")
                return ""
            if p.stat().st_size > MAX_CODE_FILE_BYTES:
                self.problem(field, f"{name}: larger than 1 MiB")
                return ""
            return p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            self.problem(field, f"{name}: {err}")
            return ""

    def connection(self, value: Any, path: str) -> workflow_pb2.Connection:
        conn = workflow_pb2.Connection()
        m = self.fields(value, path, "a connection", _CONNECTION_FIELDS)
        if m is None:
            return conn
        compact = "from" in m or "to" in m
        long = any(k in m for k in ("from_node", "from_output", "to_node", "to_input"))
        if compact and long:
            self.problem(path, "use from/to or from_node/from_output/to_node/to_input, not both")
            return conn
        if compact:
            src = self.string(m.get("from", ""), f"{path}.from")
            dst = self.string(m.get("to", ""), f"{path}.to")
            if not src or not dst:
                self.problem(path, 'a compact connection needs from: "node.output" and to: "node.input"')
            conn.from_node, _, conn.from_output = src.partition(".")
            conn.to_node, _, conn.to_input = dst.partition(".")
            if not conn.to_input:
                conn.to_input = conn.from_output
        else:
            for key in ("from_node", "from_output", "to_node", "to_input"):
                if key in m:
                    setattr(conn, key, self.string(m[key], f"{path}.{key}"))
            if not conn.to_input:
                conn.to_input = conn.from_output
        return conn

    def _structure(self, wf: workflow_pb2.Workflow) -> None:
        ids: dict[str, int] = {}
        for i, node in enumerate(wf.nodes):
            if node.id in ids:
                self.problem(f"nodes[{i}].id", f"duplicate node id {node.id!r} (also nodes[{ids[node.id]}])")
            elif node.id:
                ids[node.id] = i
        for i, c in enumerate(wf.connections):
            for key in ("from_node", "to_node"):
                name = getattr(c, key)
                if name and name not in ids:
                    self.problem(f"connections[{i}].{key}", f"unknown node {name!r}")
            if c.from_node and c.from_node == c.to_node:
                self.problem(f"connections[{i}]", f"node {c.from_node!r} is connected to itself")
