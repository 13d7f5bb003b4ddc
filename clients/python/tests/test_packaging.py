"""The built wheel carries the generated kgw.v1 modules and works when installed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # sdist first, then the wheel from the unpacked sdist: the path users of the sdist take.
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(PROJECT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (found,) = out.glob("kgw-*.whl")
    return found


def test_wheel_contains_generated_modules(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("workflow", "execution", "secret", "resource"):
        assert f"kgw/v1/{module}_pb2.py" in names
        assert f"kgw/v1/{module}_pb2.pyi" in names
        assert f"kgw/v1/{module}_pb2_grpc.py" in names
    assert "kgw/v1/__init__.py" in names
    assert "kgw/py.typed" in names
    assert "kgw/client.py" in names


def test_installed_wheel_imports(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    probe = (
        "import kgw, kgw.v1.workflow_pb2 as w, kgw.v1.execution_pb2_grpc;"
        "print(kgw.__file__); print(w.Workflow(name='x').name)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr
    location, name = done.stdout.splitlines()
    assert location.startswith(str(target))
    assert name == "x"
