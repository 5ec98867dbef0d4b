"""The service fixes glibc's heap thresholds for a steady RSS (edge/heap.py)."""

import ctypes.util
import platform

import pytest

from gmp_edge.edge.heap import return_large_blocks


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_glibc_takes_the_thresholds():
    assert ctypes.util.find_library("c")
    assert return_large_blocks() is True
