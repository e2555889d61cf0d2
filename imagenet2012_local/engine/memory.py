"""Giving freed heap memory back to the operating system.

glibc's malloc keeps freed memory for reuse instead of returning it, so a
process's RSS stays at its peak. Indexing full ImageNet's 1.28 M train images
builds ~1,000 small column arrays (~40 bytes an image, ~50 MB in all) and
then one large one; the small ones would stay part of the build process's
RSS for the whole build, ~50 MB of the 1 GB the process tree (the build and
its workers) is kept under. So the build (`engine`) gives freed memory back
after indexing each archive and after planning, and workers after each item.
"""

from __future__ import annotations

import ctypes
import functools


def release_freed_heap() -> None:
  """Returns freed heap memory to the OS (glibc's malloc_trim); a no-op
  where the C library has no malloc_trim (macOS, musl)."""
  trim = _malloc_trim()
  if trim is not None:
    trim(0)


@functools.cache
def _malloc_trim():
  # The C library's symbols, as `worker_pool` finds prctl.
  return getattr(ctypes.CDLL(None), 'malloc_trim', None)
