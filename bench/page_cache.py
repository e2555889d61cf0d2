"""Puts files into or out of the page cache, and says how much of them is there.

Cold runs start with the archives evicted (`posix_fadvise(DONTNEED)`, which
needs no root), so they are read from disk, as the real 155 GB are; warm runs
start right after a read of them, as the harness always did.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.mincore.argtypes = (
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.POINTER(ctypes.c_ubyte),
)
_MAP_FAILED = ctypes.c_void_p(-1).value


def evict(paths: Sequence[Path]) -> None:
  """Drops `paths` from the page cache (writing back dirty pages first: the
  kernel only drops clean ones)."""
  os.sync()
  for path in paths:
    fd = os.open(path, os.O_RDONLY)
    try:
      os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
      os.close(fd)


def warm(
    paths: Sequence[Path],
    wrap: Callable[[list[str]], list[str]] | None = None,
) -> None:
  """Reads `paths` with `cat` (its argv passed through `wrap`, if any, e.g. to
  run it in a cgroup)."""
  argv = ['cat', *map(str, paths)]
  subprocess.run(
      wrap(argv) if wrap else argv, stdout=subprocess.DEVNULL, check=True
  )


# What the variants' commands import: TensorFlow's and TFDS's libraries (~0.5
# GB of shared objects and modules), the `tfds` CLI, both builders and ours.
_VARIANT_IMPORTS = (
    'tensorflow',
    'tensorflow_datasets',
    'tensorflow_datasets.scripts.cli.main',
    'tensorflow_datasets.datasets.imagenet2012.imagenet2012_dataset_builder',
    'imagenet2012_local.imagenet2012_local_dataset_builder',
    'imagenet2012_local.commands.cli',
)


def warm_libraries() -> None:
  """Brings the files the variants import into the page cache, by importing
  them in a process outside the run's groups: a run in a throttled group
  would otherwise pay their page faults at the throttled rate (thousands of
  reads: seconds at 375 a second), a cost of where the harness keeps its
  libraries, not of reading the archives."""
  subprocess.run(
      [sys.executable, '-c', f'import {", ".join(_VARIANT_IMPORTS)}'],
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
      check=True,
  )


def resident_bytes(path: Path) -> int:
  """Bytes of `path` now in the page cache (mincore over a mapping of it)."""
  size = path.stat().st_size
  if not size:
    return 0
  fd = os.open(path, os.O_RDONLY)
  try:
    address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
  finally:
    os.close(fd)
  if address == _MAP_FAILED:
    raise OSError(ctypes.get_errno(), f'mmap of {path} failed')
  try:
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    # One byte per page; bit 0 set where the page is resident.
    vector = (ctypes.c_ubyte * pages)()
    if _libc.mincore(address, size, vector):
      raise OSError(ctypes.get_errno(), f'mincore of {path} failed')
    resident = np.frombuffer(vector, np.uint8) & 1
  finally:
    _libc.munmap(address, size)
  return min(size, int(np.count_nonzero(resident)) * mmap.PAGESIZE)
