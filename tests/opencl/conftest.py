"""tests/opencl/ runs on any OpenCL device (PoCL in CI). The whole directory is skipped, and
only then, when pyopencl is not installed or no OpenCL device exists."""
from __future__ import annotations

import importlib.util
import os

import pytest

REASON = None
if importlib.util.find_spec("pyopencl") is None:
    REASON = "pyopencl is not installed"
else:
    from wengert.opencl import NoOpenCLError, list_devices
    try:
        list_devices()
    except NoOpenCLError as e:
        REASON = f"no OpenCL device: {e}"


def pytest_collection_modifyitems(config, items):
    if REASON is None:
        return
    if os.environ.get("WENGERT_REQUIRE_OPENCL"):  # CI: a missing device must fail, not skip
        raise pytest.UsageError(f"WENGERT_REQUIRE_OPENCL is set but the OpenCL tests cannot run: {REASON}")
    for item in items:
        if "tests/opencl/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.skip(reason=REASON))


@pytest.fixture(scope="session")
def backend():
    from wengert.opencl import get_backend
    return get_backend("opencl")
