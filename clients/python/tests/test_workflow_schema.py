"""docs/workflow.schema.json: every example workflow file and the Go client's
testdata match it, and the mistakes a person makes do not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((REPO / "docs" / "workflow.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
FILES = sorted((REPO / "examples").glob("*/workflow*.yaml")) + sorted((REPO / "clients" / "go" / "testdata").glob("*/*.*[ln]"))


def test_the_schema_is_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_file_matches_schema(path: Path) -> None:
    doc = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in VALIDATOR.iter_errors(doc)]
    assert not errors, errors


def test_examples_found() -> None:
    assert len([f for f in FILES if f.suffix == ".yaml"]) >= 12


BASE: dict[str, Any] = {"name": "w", "nodes": [{"id": "a", "code": "result = {}"}]}


@pytest.mark.parametrize(
    "change",
    [
        {"name": "Bad Name"},
        {"nodes": []},
        {"nodes": [{"id": "a"}]},
        {"nodes": [{"id": "a", "code": "x", "code_file": "x.star"}]},
        {"nodes": [{"id": "a", "code": "x", "requires": ["db"]}]},
        {"nodes": [{"id": "a", "code": "x", "timeout": "5 minutes"}]},
        {"nodes": [{"id": "a", "code": "x", "timeout": -1}]},
        {"nodes": [{"id": "a", "code": "x", "retry": {"max_attempts": 0}}]},
        {"nodes": [{"id": "a", "code": "x", "retry": {"multiplier": 0.5}}]},
        {"connections": [{"from": "a.x", "to_node": "b"}]},
        {"connections": [{"from": "a.x"}]},
        {"timeout": "1d"},
        {"labels": {"Team": "x"}},
        {"extra": 1},
    ],
)
def test_mistakes_do_not_match(change: dict[str, Any]) -> None:
    doc = {**BASE, **change}
    assert list(VALIDATOR.iter_errors(doc)), f"{change} matched the schema"


@pytest.mark.parametrize(
    "change",
    [
        {"timeout": "1m30s"},
        {"timeout": 0.5},
        {"timeout": "0"},
        {"connections": [{"from": "a", "to": "b"}]},
        {"connections": [{"from_node": "a", "from_output": "x", "to_node": "b"}]},
        {"nodes": [{"id": "a", "code_file": "a.star", "retry": {"max_attempts": 3, "multiplier": 0}}]},
        {"labels": {"team": "x", "tier": 1}},
    ],
)
def test_variants_match(change: dict[str, Any]) -> None:
    doc = {**BASE, **change}
    errors = [e.message for e in VALIDATOR.iter_errors(doc)]
    assert not errors, errors
