"""What a test needs from the machine (node, an npm install, Chromium), and what its absence means.

On a developer's machine a missing tool is a skip, with the command that installs it. In CI
(``CI=true``, as ``.ci/run`` runs) setup has installed everything, so a missing tool is a
broken setup and the test fails: a real-SDK test must never pass in CI by not running.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip for ``reason``, or fail under CI, where setup should have provided it."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: setup must provide it, so this is a failure, not a skip)")
    pytest.skip(reason)


def node() -> None:
    """Node and npm on PATH, or :func:`unavailable`."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        unavailable("node and npm are needed")
