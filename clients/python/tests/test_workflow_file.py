"""Workflow files (YAML/JSON with code_file), as the Go client and the CLI read them."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import pytest

import kgw
from kgw.v1 import workflow_pb2

REPO = Path(__file__).resolve().parents[3]
HELLO = REPO / "clients" / "go" / "testdata" / "hello"


def test_hello_yaml_and_json_are_the_same_workflow() -> None:
    from_yaml = kgw.load_workflow_file(HELLO / "hello.yaml")
    from_json = kgw.load_workflow_file(HELLO / "hello.json")
    assert from_yaml == from_json
    wf = from_yaml
    assert wf.name == "hello_db" and wf.description == "Says hello from PostgreSQL"
    assert wf.timeout.seconds == 60
    assert dict(wf.labels) == {"team": "docs", "tier": "1"}
    query, shout = wf.nodes
    assert query.code == (HELLO / "query.star").read_text()
    assert list(query.required_resources) == ["db"]
    assert (query.timeout.seconds, query.retry.max_attempts) == (10, 3)
    assert (query.retry.initial_backoff.nanos, query.retry.max_backoff.seconds, query.retry.multiplier) == (
        500_000_000,
        5,
        2.0,
    )
    assert shout.code == 'result = {"loud": message.upper()}\n'
    assert [(c.from_node, c.from_output, c.to_node, c.to_input) for c in wf.connections] == [
        ("query", "message", "shout", "message")
    ]


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*/workflow*.yaml")), ids=lambda p: p.parent.name)
def test_every_example_loads(path: Path) -> None:
    wf = kgw.load_workflow_file(path)
    assert wf.name and wf.nodes
    assert all(n.code for n in wf.nodes), "a node without code"


def _problems(text: str, fmt: str = "yaml", base: Path | None = None) -> list[tuple[str, str]]:
    with pytest.raises(kgw.WorkflowFileError) as info:
        kgw.parse_workflow(text, fmt, base)
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("name: w\nnodes: [{id: a, code: x, requires: [db]}]", "nodes[0].requires", "unknown field 'requires' in a node"),
        ("name: w\nnodes: [{id: a}]", "nodes[0]", "exactly one of code or code_file"),
        ("name: w\nnodes: [{id: a, code: x, code_file: y}]", "nodes[0]", "exactly one of code or code_file"),
        ("name: 3\nnodes: [{id: a, code: x}]", "name", "want a string, got a number"),
        ("name: w\nnodes: []", "nodes", "at least one node"),
        ("nodes: [{id: a, code: x}]", "name", "needs a name"),
        ("name: w\ntimeout: 5 minutes\nnodes: [{id: a, code: x}]", "timeout", "bad duration"),
        ("name: w\ntimeout: -5\nnodes: [{id: a, code: x}]", "timeout", "must not be negative"),
        ("name: w\nnodes: [{id: a, code: x, retry: {max_attempts: 0}}]", "nodes[0].retry.max_attempts", ">= 1"),
        ("name: w\nnodes: [{id: a, code: x, retry: {multiplier: 0.5}}]", "nodes[0].retry.multiplier", ">= 1"),
        ("name: w\nnodes: [{id: a, code: x}, {id: a, code: y}]", "nodes[1].id", "duplicate node id 'a'"),
        ("name: w\nnodes: [{id: a, code: x}]\nconnections: [{from: a.x, to: c}]", "connections[0].to_node", "unknown node 'c'"),
        ("name: w\nnodes: [{id: a, code: x}]\nconnections: [{from: a.x, to_node: a}]", "connections[0]", "not both"),
        ("name: w\nnodes: [{id: a, code: x}]\nconnections: [{from: a.x, to: a.y}]", "connections[0]", "connected to itself"),
        ("name: w\nnodes: [{id: a, code_file: missing.star}]", "nodes[0].code_file", "not a regular file"),
        ("name: w\nlabels: {a: [1]}\nnodes: [{id: a, code: x}]", "labels.a", "want text"),
        ("name: w\ndisable_journal: yes please\nnodes: [{id: a, code: x}]", "disable_journal", "true or false"),
    ],
)
def test_problems_are_reported_by_field(text: str, field: str, message: str, tmp_path: Path) -> None:
    problems = _problems(text, base=tmp_path)
    assert any(f == field and message in m for f, m in problems), problems


def test_every_problem_at_once() -> None:
    problems = _problems("name: 3\ntimeout: x\nnodes: [{id: a, cod: x}]")
    fields = [f for f, _ in problems]
    assert "name" in fields and "timeout" in fields and "nodes[0].cod" in fields and "nodes[0]" in fields


def test_duplicate_fields_and_documents() -> None:
    assert "given twice" in _problems("name: a\nname: b\nnodes: [{id: a, code: x}]")[0][1]
    assert "given twice" in _problems('{"name": "a", "name": "b"}', "json")[0][1]
    assert "exactly one YAML document" in _problems("name: a\n---\nname: b\n")[0][1]
    assert "merge keys" in _problems("base: &b {id: a}\nname: w\nnodes: [{<<: *b, code: x}]")[0][1]
    assert "not valid YAML" in _problems("name: [unclosed")[0][1]


def test_durations() -> None:
    wf = kgw.parse_workflow("name: w\ntimeout: 1m30s\nnodes: [{id: a, code: x, timeout: 0.25}]")
    assert wf.timeout.seconds == 90
    assert (wf.nodes[0].timeout.seconds, wf.nodes[0].timeout.nanos) == (0, 250_000_000)
    wf = kgw.parse_workflow('{"name": "w", "timeout": "1.5h", "nodes": [{"id": "a", "code": "x", "timeout": 0}]}', "json")
    assert wf.timeout.seconds == 5400
    assert not wf.nodes[0].HasField("timeout")


def test_code_file_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.star").write_text("result = {'a': 1}\n")
    (tmp_path / "wf.json").write_text(json.dumps({"name": "w", "nodes": [{"id": "a", "code_file": "sub/a.star"}]}))
    assert kgw.load_workflow_file(tmp_path / "wf.json").nodes[0].code == "result = {'a': 1}\n"
    with pytest.raises(kgw.WorkflowFileError, match="want a .yaml"):
        kgw.load_workflow_file(tmp_path / "sub" / "a.star")


def test_yaml_needs_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_yaml(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "yaml":
            raise ImportError("No module named 'yaml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    with pytest.raises(ImportError, match=r"pip install 'kgw\[yaml\]'"):
        kgw.parse_workflow("name: w")
    # JSON needs nothing more.
    assert kgw.parse_workflow('{"name": "w", "nodes": [{"id": "a", "code": "x"}]}', "json").name == "w"


def test_result_is_a_workflow_message() -> None:
    assert isinstance(kgw.parse_workflow('{"name": "w", "nodes": [{"id": "a", "code": "x"}]}', "json"), workflow_pb2.Workflow)
