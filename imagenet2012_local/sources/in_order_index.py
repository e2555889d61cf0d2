"""An archive's index from one sequential read, which can also give its digest.

`archive_index` reads one 512-byte header per image at its offset: free on a
disk that serves thousands of random reads a second, ruinous on one that
seeks (a standard cloud disk serves ~375 a second: full ImageNet's 1.33 M
headers take an hour, where reading all 155 GB in order takes 43 minutes at
its 60 MB/s). Here the archive is read once, in order, in 1 MiB pieces
(`direct_reads`, through the page cache: what stays there, the writing reads
first, see `in_order_writer`), and the headers are parsed as the pieces
pass; every piece can also be handed to the checksum gate, whose digest
needs that read anyway.

Only plain tars (`tar_reader`: every ImageNet tar) are indexed this way;
for any other tar the walk gives up (`NotInOrder`) and the caller indexes by
offset, as before, once the pass has ended.
"""

from __future__ import annotations

import array
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Iterator, MutableMapping

from etils import epath
import numpy as np

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import archive_index
from imagenet2012_local.sources import direct_reads
from imagenet2012_local.engine import disk_probe
from imagenet2012_local.engine import image_fixes
from imagenet2012_local.sources import tar_reader
from imagenet2012_local import tfds_internals
from imagenet2012_local.gate import verification

_log = logging.getLogger(__name__)

# Bytes of the previous piece kept for reads that step back: tarfile and the
# tar checks step back at most one block; a piece is 1 MiB.
_KEPT_BEHIND = 64 << 10


class NotInOrder(Exception):
  """The archive cannot be indexed from an in-order read (not a plain tar)."""


class InOrderFile:
  """A read-only file over pieces of a sequential read, for reads at offsets
  that only move forward (or back by at most `_KEPT_BEHIND`).

  Every piece passes `on_piece` once, in order, whether a read needed it or
  not: skipping forward reads (and hands on) the pieces in between.
  """

  def __init__(
      self,
      pieces: Iterator[bytes | memoryview],
      on_piece: Callable[[memoryview], None],
      start: int = 0,
  ):
    """The file whose bytes from `start` on are `pieces`."""
    self._pieces = pieces
    self._on_piece = on_piece
    self._behind = b''  # The last bytes before `_piece`, copied.
    self._piece = memoryview(b'')  # Valid until the next is pulled.
    self._piece_start = start  # File offset of `_piece`'s first byte.
    self._pos = start

  def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
    if whence != os.SEEK_SET:
      raise NotInOrder('a seek from the end or the current position')
    self._pos = pos
    return pos

  def tell(self) -> int:
    return self._pos

  def read(self, size: int = -1) -> bytes:
    if size < 0:
      raise NotInOrder('a read to the end')
    out = []
    end = self._pos + size
    while self._pos < end:
      chunk = self._bytes_at(self._pos, end)
      if not chunk:
        break  # The end of the file.
      out.append(chunk)
      self._pos += len(chunk)
    return b''.join(out)

  def _bytes_at(self, pos: int, end: int) -> bytes:
    """Bytes from `pos`, up to `end`, from one piece (or the kept bytes)."""
    behind_start = self._piece_start - len(self._behind)
    if pos < behind_start:
      raise NotInOrder(f'a read back to byte {pos:,}')
    if pos < self._piece_start:
      return self._behind[pos - behind_start : end - behind_start]
    while pos >= self._piece_start + len(self._piece):
      if not self._pull():
        return b''
    start = pos - self._piece_start
    return bytes(self._piece[start : start + end - pos])

  def _pull(self) -> bool:
    """Takes the next piece; False at the end of the file."""
    piece = next(self._pieces, None)
    if piece is None:
      return False
    kept = bytes(self._piece[-_KEPT_BEHIND:])
    self._behind = (self._behind + kept)[-_KEPT_BEHIND:]
    self._piece_start += len(self._piece)
    self._piece = memoryview(piece)
    self._on_piece(self._piece)
    return True

  def read_to_end(self) -> None:
    """Reads (and hands on) every piece not read yet."""
    while self._pull():
      pass


def index_in_order(
    path: epath.PathLike,
    archive: archive_facts.Archive,
    pieces: Iterator[bytes | memoryview],
    on_piece: Callable[[memoryview], None],
    skipped: MutableMapping[str, str],
    on_image: Callable[[str, bytes], None] | None = None,
) -> archive_index.ArchiveIndex:
  """The index of `archive` at `path`, from its bytes in order.

  Args:
    path: the archive, for messages.
    archive: which ImageNet archive it is (nesting, image names).
    pieces: the archive's bytes in order, e.g. `direct_reads.pieces(path)`;
      read to the end, even when the walk gives up.
    on_piece: called with every piece, in order (e.g. the digest's update).
    skipped: receives {member: why} of members that are not images.
    on_image: called with each image's name and bytes, in index order.

  Raises:
    NotInOrder: the archive is not a plain tar; index it by offset.
    tar_reader.ArchiveError: the archive is damaged.
  """
  path = epath.Path(path)
  size = path.stat().length
  view = InOrderFile(pieces, on_piece)

  def read_image(name: str, offset: int, image_size: int) -> None:
    view.seek(offset)
    on_image(name, view.read(image_size))

  on_member = read_image if on_image else None
  try:
    if archive.nested:
      index = _nested(view, path, size, archive.image_names, on_member)
    else:
      members = _plain_members(
          view, path, 0, size, archive.image_names, on_member=on_member
      )
      index = archive_index.ArchiveIndex.of_tar(members)
  finally:
    if sys.exc_info()[0] in (None, NotInOrder):  # Not past a damaged archive.
      view.read_to_end()
  archive_index.finish(path, archive.image_names, len(index), skipped)
  return index


def _nested(
    view: InOrderFile,
    path: epath.Path,
    size: int,
    image_names: archive_facts.Naming,
    on_image: Callable[[str, int, int], None] | None,
) -> archive_index.ArchiveIndex:
  """Train's index: each inner tar walked right after its outer header."""
  parts, class_dirs = [], []

  def walk_inner(name: str, offset: int, inner_size: int) -> None:
    images = _plain_members(
        view, path, offset, inner_size, image_names, name, on_image
    )
    parts.append(archive_index.ArchiveIndex.of_tar(images, len(class_dirs)))
    class_dirs.append(name.removesuffix('.tar'))

  _plain_members(view, path, 0, size, archive_facts.CLASS_TARS, on_member=walk_inner)
  return archive_index.ArchiveIndex.concatenate(parts, tuple(class_dirs))


def _plain_members(
    view: InOrderFile,
    path: epath.Path,
    start: int,
    size: int,
    naming: archive_facts.Naming,
    inner_name: str = '',
    on_member: Callable[[str, int, int], None] | None = None,
) -> list[archive_index.Entry]:
  """(name, archive offset, size) of the members of a plain tar."""
  found = tar_reader.plain_members(
      path, view, start, size, naming, inner_name, on_member
  )
  if found is None:
    raise NotInOrder(f'{path}/{inner_name} is not a plain tar')
  return found


def index_and_hash(
    check: verification.ArchiveCheck,
    archive: archive_facts.Archive,
    skipped: MutableMapping[str, str],
    read_order: str = 'auto',
) -> archive_index.ArchiveIndex | None:
  """The archive's index from one read in order, where the disk makes that
  cheaper than reading headers by offset (`disk_probe`, or the `read_order`
  setting); the checksum gate's
  digest is computed from the same read and checked, if it needs one.
  None: index it by offset (the digest, if computed, is checked already).

  Raises:
    verification.ChecksumError: the digest is wrong.
    tar_reader.ArchiveError: the archive is damaged.
  """
  hashing = check.needs_hashing
  if not disk_probe.index_in_order(check.path, check.size, hashing, read_order):
    return None
  what = 'Indexing and verifying' if hashing else 'Indexing'
  with tfds_internals.progress_bar(
      total=check.size, desc=f'{what} {archive.split}', unit='B', unit_scale=True
  ) as bar:

    def on_piece(piece: memoryview) -> None:
      if hashing:
        check.update(piece)
      bar.update(len(piece))

    content = _Content(check.path)
    try:
      index = index_in_order(
          check.path, archive, direct_reads.pieces(check.path, direct=False),
          on_piece,
          skipped, content.add,
      )
    except NotInOrder as e:
      _log.info('%s: indexing by offset instead (%s).', check.path, e)
      index = None
  if hashing:
    check.finish()
  return None if index is None else content.columns_of(index)


class _Content:
  """What each image's content gives, in index order (see
  `archive_index.ArchiveIndex.stored_sizes`): its fix decided here as the
  shards' writing will decide it (`image_fixes`), so that every record's size
  is known before the archive is read again."""

  def __init__(self, archive: epath.Path):
    self._fixer = image_fixes.ImageFixer(archive, skip_bad_images=True)
    # Stored sizes, heights, widths, as machine ints: 16 bytes an image, 21 MB
    # for ImageNet's 1.33 M; as Python lists, a pointer and an int object
    # (~36 bytes) an entry, ~140 MB.
    self._columns = (array.array('q'), array.array('i'), array.array('i'))

  def add(self, name: str, data: bytes) -> None:
    fixed = self._fixer(name, data)
    header = fixed and image_fixes.read_jpeg_header(fixed)
    facts = (len(fixed), header.height, header.width) if header else (-1, 0, 0)
    for column, fact in zip(self._columns, facts):
      column.append(fact)

  def columns_of(self, index: archive_index.ArchiveIndex) -> archive_index.ArchiveIndex:
    """`index` with these columns."""
    sizes, heights, widths = self._columns
    return dataclasses.replace(
        index,
        stored_sizes=np.frombuffer(sizes, dtype=np.int64),
        heights=np.frombuffer(heights, dtype=np.int32),
        widths=np.frombuffer(widths, dtype=np.int32),
    )
