"""Throwaway certificates for TLS tests, made with the openssl command.

A CA, a server certificate for 127.0.0.1/localhost and client certificates
(with a SPIFFE URI SAN when asked), EC P-256, valid for a day.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("openssl not found in PATH: the TLS tests make certificates with it (apt-get install openssl)")
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"openssl {' '.join(args)}: {done.stderr}")


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, as files."""

    cert: Path
    key: Path


class CA:
    """A certificate authority in ``directory`` named ``name``."""

    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        self.name = name
        self.cert = directory / f"{name}.crt"
        self.key = directory / f"{name}.key"
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", self.key.name, "-out", self.cert.name, "-days", "1", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            cwd=directory,
        )  # fmt: skip

    def issue(self, base: str, cn: str, *, client: bool, sans: str = "") -> Pair:
        """Issues ``base.crt``/``base.key`` for ``cn`` (clientAuth or serverAuth usage)."""
        ext = self.dir / f"{base}.ext"
        lines = [f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}"]
        if sans:
            lines.append(f"subjectAltName={sans}")
        ext.write_text("\n".join(lines) + "\n")
        _openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{base}.key", "-out", f"{base}.csr", "-subj", f"/CN={cn}",
            cwd=self.dir,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{base}.csr", "-CA", self.cert.name, "-CAkey", self.key.name,
            "-CAcreateserial", "-out", f"{base}.crt", "-days", "1", "-extfile", ext.name,
            cwd=self.dir,
        )  # fmt: skip
        return Pair(self.dir / f"{base}.crt", self.dir / f"{base}.key")

    def server(self) -> Pair:
        """A server certificate for 127.0.0.1, ::1 and localhost."""
        return self.issue(f"{self.name}-server", "localhost", client=False, sans="IP:127.0.0.1,IP:::1,DNS:localhost")
