"""Build hook that puts the generated kgw.v1 modules into the wheel and sdist.

The protobuf/gRPC modules live in gen/python/kgw/v1 at the repository root
(written by `make generate`, never by hand). In the source tree
src/kgw/v1 is a symlink to them; archives get real copies instead:

- wheel from the tree:  ../../gen/python/kgw/v1 -> kgw/v1
- sdist from the tree:  ../../gen/python/kgw/v1 -> src/kgw/v1
- wheel from an sdist:  src/kgw/v1 (real files unpacked from the sdist) -> kgw/v1
- editable install:     nothing; src/kgw/v1 is the symlink
"""

from __future__ import annotations

import os
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class GeneratedCodeHook(BuildHookInterface):  # type: ignore[type-arg]
    """Force-includes the generated kgw.v1 package."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return  # an editable install imports src/kgw, whose v1 symlink reaches gen/
        gen = os.path.normpath(os.path.join(self.root, "..", "..", "gen", "python", "kgw", "v1"))
        local = os.path.join(self.root, "src", "kgw", "v1")
        if os.path.isdir(gen):
            source = gen
        elif os.path.isdir(local) and not os.path.islink(local):
            source = local
        else:
            raise RuntimeError(f"generated code not found at {gen}: run `make generate` at the repository root")
        target = "src/kgw/v1" if self.target_name == "sdist" else "kgw/v1"
        for name in sorted(os.listdir(source)):
            if name.endswith((".py", ".pyi")):
                build_data["force_include"][os.path.join(source, name)] = f"{target}/{name}"
