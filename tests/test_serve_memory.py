"""Heap trimming in the server: malloc_trim gives back the pages of freed blocks stuck between live
ones (measured as resident size in a fresh interpreter), and the trimmer runs at most once per interval."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from seqrec_cli.serve.memory import HeapTrimmer, release_free_heap

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Free a mapped 1 MiB block (glibc then serves smaller large blocks from its heap), allocate and touch
# 64 blocks of 256 KiB with a live 128 KiB block after each, free the 256 KiB ones: their pages stay
# resident (holes between live blocks). Report RSS there and after release_free_heap() (or nothing).
PROBE = """
import ctypes, json, sys
from seqrec_cli.serve.memory import release_free_heap
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def rss_kib():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
libc.free(libc.malloc(1 << 20))
holes, live = [], []
for _ in range(64):
    holes.append(libc.malloc(256 << 10))
    ctypes.memset(holes[-1], 1, 256 << 10)
    live.append(libc.malloc(128 << 10))
for block in holes:
    libc.free(block)
freed = rss_kib()
if sys.argv[1] == "release":
    assert release_free_heap()
print(json.dumps({"freed": freed, "after": rss_kib()}))
"""


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc_trim")
def test_release_gives_back_the_pages_of_freed_blocks():
    def rss(mode: str) -> dict:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    kept, released = rss("keep"), rss("release")
    assert kept["freed"] - kept["after"] < 1024  # without it the holes stay resident
    assert released["freed"] - released["after"] >= 12 * 1024  # most of the 16 MiB of holes


@pytest.mark.skipif(GLIBC, reason="off glibc only")
def test_other_c_libraries_are_left_alone():
    assert release_free_heap() is False


def test_trimmer_releases_at_most_once_per_interval():
    now = [100.0]
    released = []
    trimmer = HeapTrimmer(10.0, clock=lambda: now[0], release=lambda: released.append(now[0]) or True)
    for t in (101.0, 109.9, 110.0, 115.0, 119.9, 120.5, 140.0):
        now[0] = t
        trimmer.maybe_trim()
    assert released == [110.0, 120.5, 140.0] and trimmer.trims == 3
