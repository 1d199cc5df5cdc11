"""The benchmarks' own functions for tests: bench/ is a folder of scripts, not a package."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.live_server import REPO


def load_bench_script(file_name: str, module_name: str) -> ModuleType:
    """bench/``file_name`` loaded as the module ``module_name``."""
    spec = importlib.util.spec_from_file_location(module_name, REPO / "bench" / file_name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(module_name, module)  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module
