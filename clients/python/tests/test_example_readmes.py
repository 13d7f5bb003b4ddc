"""Each example's README shows its Python-client form next to the CLI run:
the code compiles, loads that example's workflow file, and runs the workflow
the CLI runs with the same parameters and resources."""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

import kgw

REPO = Path(__file__).resolve().parents[3]
READMES = [p for p in sorted((REPO / "examples").glob("*/README.md")) if list(p.parent.glob("workflow*.yaml"))]


def _cli_run(text: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    m = re.search(r"^\s+(kgw run (?:[^\n]*\\\n)*[^\n]*)$", text, re.M)
    assert m, "no kgw run command"
    args = shlex.split(m.group(1).replace("\\\n", " "))[2:]
    params: dict[str, Any] = {}
    resources: dict[str, str] = {}
    for flag, value in zip(args[1::1], args[2::1]):
        if flag == "--param":
            k, _, v = value.partition("=")
            try:
                params[k] = json.loads(v)
            except ValueError:
                params[k] = v
        elif flag == "--resource":
            k, _, v = value.partition("=")
            resources[k] = v.removeprefix("@")
    return args[0], params, resources


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_readme_has_python_form(readme: Path) -> None:
    text = readme.read_text()
    m = re.search(r"## Python client\n.*?```python\n(.*?)```", text, re.S)
    assert m, f"{readme}: no ## Python client block"
    code = m.group(1)
    tree = ast.parse(code)
    compile(tree, str(readme), "exec")
    workflow, params, resources = _cli_run(text)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    load = next(c for c in calls if c.func.attr == "load_workflow_file")  # type: ignore[attr-defined]
    path = REPO / ast.literal_eval(load.args[0])
    assert kgw.load_workflow_file(path).name == workflow
    execute = next(c for c in calls if c.func.attr == "execute_workflow")  # type: ignore[attr-defined]
    assert ast.literal_eval(execute.args[0]) == workflow
    kw = {k.arg: k.value for k in execute.keywords}
    assert (ast.literal_eval(kw["parameters"]) if "parameters" in kw else {}) == params
    got = {}
    if "resources" in kw:
        node = kw["resources"]
        assert isinstance(node, ast.Dict)
        for key, value in zip(node.keys, node.values):
            assert isinstance(value, ast.Call) and key is not None
            got[ast.literal_eval(key)] = ast.literal_eval(value.args[0])
    assert got == resources
