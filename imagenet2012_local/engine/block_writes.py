"""Writes at planned offsets of many files, none of which makes the kernel
read a block first.

A write into part of a file block whose page was written back and evicted
makes the kernel read that block before it can change it: a random read per
record boundary when records are written at planned offsets in random order,
the very cost `in_order_writer` exists to avoid (docs/performance.md
measures it). So `BlockWrites.place` writes whole blocks in place, and
appends the partial blocks at either end of a piece (about one block a
record, ~4 % of ImageNet's bytes) to an edge file; once every piece is placed,
`write_blocks` reads each edge file back and writes its blocks whole.

On disk, in the folder given: `edges-<k>.bin`, the edge pieces of the files
whose number is k modulo `BUCKETS`, each an `_ENTRY` (file number int32,
offset int64, length uint32; little-endian) followed by its bytes.
"""

from __future__ import annotations

import collections
import mmap
import os
import struct
from collections.abc import Sequence

from etils import epath

# Full ImageNet's ~5 GB of edges: ~20 MB an edge file, read back at once
# (tiny images are all edge: its 1.33 M images at ~1.3 KB, ~11 MB a file).
BUCKETS = 256
_ENTRY = struct.Struct('<iqI')


def block_size(folder: epath.PathLike) -> int:
  """The unit a write into `folder`'s files must cover whole not to make the
  kernel read first: the page, or the file system's block if larger."""
  return max(mmap.PAGESIZE, os.statvfs(folder).f_bsize)


def edge_file(folder: epath.Path, k: int) -> epath.Path:
  """The `k`-th edge file in `folder`."""
  return folder / f'edges-{k:02d}.bin'


class BlockWrites:
  """Pieces placed in open files, whole blocks at once (module docstring)."""

  def __init__(
      self,
      folder: epath.Path,
      fds: Sequence[int],
      sizes: Sequence[int],
      block: int,
      lengths: Sequence[int] | None = None,
  ):
    """Files `fds`, of `sizes` bytes each, blocks of `block` bytes.

    Args:
      folder: where the edge files are.
      fds: the open files, numbered by their place here.
      sizes: each file's final size: its last block ends there.
      block: see `block_size`.
      lengths: the edge files' lengths at a checkpoint, to go on from (what
        follows is cut off); None: new edge files.
    """
    self._folder = folder
    self._fds = fds
    self._sizes = sizes
    self._block = block
    self._files = []
    for k in range(BUCKETS):
      f = open(self._path(k), 'r+b' if lengths else 'w+b')
      if lengths:
        f.truncate(lengths[k])
        f.seek(lengths[k])
      self._files.append(f)

  def _path(self, k: int) -> epath.Path:
    return edge_file(self._folder, k)

  def place(self, number: int, start: int, data: bytes) -> None:
    """Puts `data` at `start` of file `number`: whole blocks now, the
    partial ones at either end by `write_blocks`."""
    block = self._block
    end = start + len(data)
    whole_start = min(end, -(-start // block) * block)
    whole_end = max(whole_start, end // block * block)
    view = memoryview(data)
    if start < whole_start:
      self._keep(number, start, view[: whole_start - start])
    if whole_start < whole_end:
      os.pwrite(self._fds[number], view[whole_start - start : whole_end - start], whole_start)
    if whole_end < end:
      self._keep(number, whole_end, view[whole_end - start :])

  def _keep(self, number: int, start: int, piece: memoryview) -> None:
    f = self._files[number % BUCKETS]
    f.write(_ENTRY.pack(number, start, len(piece)))
    f.write(piece)

  def flush(self) -> list[int]:
    """Hands the edge files' buffers to the kernel; their lengths."""
    for f in self._files:
      f.flush()
    return [f.tell() for f in self._files]

  def write_blocks(self) -> None:
    """Writes every partial block whole, an edge file at a time.

    Raises:
      RuntimeError: a block's pieces do not cover it (a bug, not the data).
    """
    for f in self._files:
      f.flush()
      f.seek(0)
      data = memoryview(f.read())  # Its pieces are views of it, not copies.
      pieces = collections.defaultdict(list)
      pos = 0
      while pos < len(data):
        number, start, length = _ENTRY.unpack_from(data, pos)
        pos += _ENTRY.size
        pieces[number, start // self._block].append((start, data[pos : pos + length]))
        pos += length
      for (number, block_number), parts in pieces.items():
        self._write_block(number, block_number, sorted(parts, key=lambda p: p[0]))

  def _write_block(
      self, number: int, block_number: int, parts: list[tuple[int, memoryview]]
  ) -> None:
    """Joins the pieces of one block, which must cover it, and writes it."""
    start = block_number * self._block
    end = min(start + self._block, self._sizes[number])
    at = start
    for piece_start, piece in parts:
      if piece_start != at:
        break
      at += len(piece)
    if at != end:
      raise RuntimeError(
          f'file {number}: the block at byte {start:,} has pieces up to'
          f' {at:,}, not {end:,}'
      )
    os.pwrite(self._fds[number], b''.join(piece for _, piece in parts), start)

  def close(self, remove: bool) -> None:
    """Closes the edge files; deletes them if `remove`."""
    for k, f in enumerate(self._files):
      f.close()
      if remove:
        self._path(k).unlink(missing_ok=True)
