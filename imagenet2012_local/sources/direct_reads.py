"""The digest's sequential read of a local archive, around the page cache.

A first, verified build reads each archive twice: in order for its digest,
and image by image for the shards. Through the page cache, the digest's pass
fills it with pages nobody reads again, and the copies and the reclaim cost
CPU that the build needs (on a few cores a verified build is close to
CPU-bound: docs/performance.md). Direct reads go around the page cache: no
copy out of it, no reclaim; four at a time keep more of the disk's queue
busy than one (`checksum_tables.chunks`). The digest starts after indexing
(`run.write_all`), beside the writing.

So a local archive is read with `O_DIRECT`, `_IN_FLIGHT` pieces at a time,
each on a thread (`os.preadv` releases the GIL), handed out in order. Where
the file system refuses direct reads (tmpfs, some network file systems) or
the archive is not local, `checksum_tables.chunks` reads it. An archive
already in the page cache is read from the disk all the same, beside the
writing: that costs disk time, not the CPU the writing needs.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
from collections.abc import Iterator

from etils import epath

from imagenet2012_local.gate import checksum_tables
from imagenet2012_local.sources import storage

PIECE = 1 << 20  # A multiple of every block size direct reads require.
_IN_FLIGHT = 4
_AHEAD = 8  # Pieces read but not yet hashed, at most: 8 MiB.
_O_DIRECT = getattr(os, 'O_DIRECT', 0)  # Linux only.


def pieces(
    path: epath.PathLike, start: int = 0, direct: bool = True
) -> Iterator[bytes | memoryview]:
  """The file's bytes in order from `start` (a multiple of `PIECE`), in
  pieces; each is valid until the next is asked for. A read error is raised
  here; stopping early stops the reads. `direct=False` reads through the
  page cache, for a read that should find (or leave) the file's pages there."""
  path = epath.Path(path)
  fd = open_direct(path) if direct and storage.is_local(path) else None
  if fd is None:
    with storage.open_read(path) as f:
      f.seek(start)
      yield from checksum_tables.chunks(f)
    return
  try:
    yield from _DirectReads(fd, os.fstat(fd).st_size, start // PIECE).pieces()
  finally:
    os.close(fd)


def open_direct(path: epath.Path) -> int | None:
  """`path` opened for direct reads, if its file system takes them."""
  if not _O_DIRECT:
    return None
  try:
    fd = os.open(path, os.O_RDONLY | _O_DIRECT)
  except OSError as e:
    if e.errno == errno.EINVAL:
      return None
    raise
  probe = mmap.mmap(-1, mmap.PAGESIZE)  # Page-aligned, as direct reads need.
  try:
    os.preadv(fd, [probe], 0)
  except OSError as e:
    os.close(fd)
    if e.errno == errno.EINVAL:
      return None
    raise
  return fd


class _DirectReads:
  """Reads a file's pieces on `_IN_FLIGHT` threads into `_AHEAD` reused
  buffers, and hands them out in order."""

  def __init__(self, fd: int, size: int, first: int = 0):
    self._fd = fd
    self._size = size
    self._count = -(-size // PIECE)
    self._buffers = [mmap.mmap(-1, PIECE) for _ in range(min(_AHEAD, self._count))]
    self._changed = threading.Condition()
    self._first = first  # The first piece to read.
    self._claimed = first  # Pieces given to a reading thread.
    self._released = first  # Pieces handed out and given back.
    self._read: dict[int, int | OSError] = {}  # Piece -> bytes read, or error.
    self._stop = False

  def pieces(self) -> Iterator[memoryview]:
    threads = [
        threading.Thread(target=self._read_pieces, name='direct-read', daemon=True)
        for _ in range(min(_IN_FLIGHT, self._count - self._first))
    ]
    for thread in threads:
      thread.start()
    try:
      for i in range(self._first, self._count):
        with self._changed:
          self._changed.wait_for(lambda: i in self._read)
          result = self._read.pop(i)
        if isinstance(result, OSError):
          raise result
        expected = min(PIECE, self._size - i * PIECE)
        if result != expected:
          raise OSError(
              errno.EIO, f'read {result:,} bytes at byte {i * PIECE:,}, not'
              f' {expected:,}: the file changed while it was read'
          )
        yield memoryview(self._buffers[i % len(self._buffers)])[:result]
        with self._changed:
          self._released = i + 1
          self._changed.notify_all()
    finally:
      with self._changed:
        self._stop = True
        self._changed.notify_all()
      for thread in threads:
        thread.join()

  def _read_pieces(self) -> None:
    """Claims the next piece whose buffer is free, reads it, and so on."""
    while True:
      with self._changed:
        self._changed.wait_for(
            lambda: self._stop
            or self._claimed >= self._count
            or self._claimed - self._released < len(self._buffers)
        )
        if self._stop or self._claimed >= self._count:
          return
        i = self._claimed
        self._claimed += 1
      try:
        result = os.preadv(self._fd, [self._buffers[i % len(self._buffers)]], i * PIECE)
      except OSError as e:
        result = e
      with self._changed:
        self._read[i] = result
        self._changed.notify_all()
