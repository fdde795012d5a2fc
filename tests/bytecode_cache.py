"""Compiled bytecode for every Python process a test run starts, kept between runs.

A run starts some seventy interpreters: the xdist workers, and the `aperture` commands,
uvicorn and worker processes the tests drive. Each imports most of the application and
its libraries (SQLAlchemy, Strawberry, boto3, alembic, redis: two thousand modules). Where
PYTHONDONTWRITEBYTECODE is set, as on this project's machines, and the environment holds no
bytecode (``uv sync`` compiles none), each of them compiled all of that from source again:
about 4.5 s of CPU per process, minutes of a suite run on two cores.

pytest loads this module before any other plugin (``-p`` in pyproject's addopts), so this
process and every one it starts write and reuse bytecode, in a directory of the virtual
environment (PYTHONPYCACHEPREFIX), never beside the sources that the setting kept clean.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def keep_bytecode_in_the_environment() -> None:
    if not (sys.dont_write_bytecode or os.environ.get("PYTHONDONTWRITEBYTECODE")):
        return  # bytecode is written beside the sources and reused already
    if sys.prefix == sys.base_prefix:
        return  # not a virtual environment: no directory of ours to write into
    prefix = os.environ.get("PYTHONPYCACHEPREFIX") or str(Path(sys.prefix) / "pycache")
    # For the processes this one starts (xdist workers, servers, commands)...
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    # ...and for this one, before it imports the application.
    sys.pycache_prefix = prefix
    sys.dont_write_bytecode = False


keep_bytecode_in_the_environment()
