"""Reading images straight out of the ImageNet tars.

Nothing is extracted to disk and no inner tar is held in memory. Two ways in:
- `iter_images` streams the outer tar once, front to back, and each inner
  `<wnid>.tar` from inside it; every byte read can pass through a callback,
  which is how the MD5 gate sees the archive without a second pass.
- `index_archive` reads only the tar headers and returns each image's byte
  range, so shards can be written in any order by reading images by offset.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import tarfile
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from etils import epath

_READ_SIZE = 1 << 20  # Large reads: tarfile's 10 KiB default costs ~14M calls on ImageNet.

_log = logging.getLogger(__name__)


class ArchiveError(Exception):
  """An archive is not a readable ImageNet tar."""


@dataclasses.dataclass(frozen=True)
class Member:
  """Where one image lies in an archive: enough to read it back by offset."""

  file_name: str
  class_dir: str | None  # The wnid of the inner tar it lies in (train only).
  offset: int  # Of the image's first byte in the (outer) archive file.
  size: int


@dataclasses.dataclass(frozen=True)
class Image:
  """One image member of an archive."""

  file_name: str  # e.g. 'n01440764_10026.JPEG' or 'ILSVRC2012_val_00000001.JPEG'
  data: bytes
  class_dir: str | None  # The wnid of the inner tar it came from (train only).


class _ObservedReader:
  """A read-only file that shows every byte it returns to `on_bytes`."""

  def __init__(self, raw: BinaryIO, on_bytes: Callable[[bytes], None]):
    self._raw = raw
    self._on_bytes = on_bytes

  def read(self, size: int = -1) -> bytes:
    data = self._raw.read(size)
    self._on_bytes(data)
    return data

  def drain(self) -> None:
    """Reads to the end, so the observer sees the whole file (tar padding too)."""
    while self.read(_READ_SIZE):
      pass


def iter_images(
    path: epath.PathLike,
    *,
    nested: bool,
    on_bytes: Callable[[bytes], None] | None = None,
) -> Iterator[Image]:
  """Yields every image of an archive in archive order.

  Args:
    path: the archive; any path `epath` opens (local, gs://, ...).
    nested: True for the train layout (a tar of `<wnid>.tar`), False for a flat
      tar of images (validation, test).
    on_bytes: called with every byte of the archive, in order, exactly once;
      only when the iteration runs to the end does it see the whole file.
  """
  path = epath.Path(path)
  with path.open('rb') as raw:
    reader = _ObservedReader(raw, on_bytes) if on_bytes else raw
    try:
      with tarfile.open(fileobj=reader, mode='r|', bufsize=_READ_SIZE) as tar:
        for member in _files(tar, str(path)):
          fileobj = tar.extractfile(member)
          if nested:
            yield from _iter_inner(member, fileobj, str(path))
          else:
            yield Image(member.name, fileobj.read(), class_dir=None)
    except tarfile.TarError as e:
      raise ArchiveError(f'{path} is not a readable tar archive: {e}') from e
    if on_bytes:
      reader.drain()


def _iter_inner(
    member: tarfile.TarInfo, fileobj: BinaryIO, archive: str
) -> Iterator[Image]:
  """Streams one `<wnid>.tar` of the train archive."""
  wnid = _class_dir(member.name, archive)
  where = f'{archive}/{member.name}'
  try:
    with tarfile.open(fileobj=fileobj, mode='r|') as inner:
      for image in _files(inner, where):
        yield Image(image.name, inner.extractfile(image).read(), class_dir=wnid)
  except tarfile.TarError as e:
    raise ArchiveError(f'{where} is not a readable tar archive: {e}') from e


def index_archive(
    path: epath.PathLike,
    *,
    nested: bool,
    map_fn: Callable[..., Iterable[list[Member]]] = map,
) -> list[Member]:
  """Every image of an archive with its byte range, in archive order.

  Reads only tar headers (about 1 KB per image), seeking over the image data.

  Args:
    path: the archive; any path `epath` opens (local, gs://, ...).
    nested: True for the train layout (a tar of `<wnid>.tar`).
    map_fn: how to map `index_inner_tar` over the inner tars, in order: e.g. a
      process pool's `imap`, since inner tars can be indexed in parallel.
  """
  top = _index_tar(epath.Path(path), start=0, size=None, class_dir=None)
  if not nested:
    return top
  for inner in top:
    _class_dir(inner.file_name, str(path))  # Fails before any work is spread.
  indexed = map_fn(functools.partial(index_inner_tar, os.fspath(path)), top)
  return [member for members in indexed for member in members]


def index_inner_tar(path: str, inner: Member) -> list[Member]:
  """The images of one `<wnid>.tar` member of the train archive."""
  return _index_tar(
      epath.Path(path),
      start=inner.offset,
      size=inner.size,
      class_dir=_class_dir(inner.file_name, path),
      where=f'{path}/{inner.file_name}',
  )


def _index_tar(
    path: epath.Path,
    start: int,
    size: int | None,
    class_dir: str | None,
    where: str | None = None,
) -> list[Member]:
  """Regular-file members of the tar at [start, start + size) of `path`."""
  where = where or str(path)
  with path.open('rb') as f:
    view = f if size is None else _Slice(f, start, size)
    try:
      with tarfile.open(fileobj=view, mode='r:') as tar:
        return [
            Member(m.name, class_dir, start + m.offset_data, m.size)
            for m in _files(tar, where)
        ]
    except tarfile.TarError as e:
      raise ArchiveError(f'{where} is not a readable tar archive: {e}') from e


class _Slice:
  """A read-only, seekable view of [start, start + size) of a file.

  An inner tar is read through it so that a damaged inner tar cannot run on
  into the next member of the outer tar.
  """

  def __init__(self, f: BinaryIO, start: int, size: int):
    self._f = f
    self._start = start
    self._size = size
    self._pos = 0

  def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
    base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}
    self._pos = base[whence] + pos
    return self._pos

  def tell(self) -> int:
    return self._pos

  def read(self, size: int = -1) -> bytes:
    end = self._size if size < 0 else min(self._size, self._pos + size)
    if end <= self._pos:
      return b''
    self._f.seek(self._start + self._pos)
    data = self._f.read(end - self._pos)
    self._pos += len(data)
    return data


def read_member(archive: BinaryIO, member: Member) -> bytes:
  """The bytes of `member` from the open archive file it was indexed in."""
  archive.seek(member.offset)
  data = archive.read(member.size)
  if len(data) != member.size:
    raise ArchiveError(
        f'{member.file_name}: the archive ends at byte'
        f' {member.offset + len(data):,}, inside this image (expected'
        f' {member.size:,} bytes from offset {member.offset:,}). The archive is'
        ' truncated: download it again.'
    )
  return data


def _class_dir(name: str, archive: str) -> str:
  """The wnid of a train archive member `<wnid>.tar`."""
  if not name.endswith('.tar'):
    raise ArchiveError(
        f'{archive}: member {name!r} is not a <wnid>.tar; is this the'
        ' train archive ILSVRC2012_img_train.tar?'
    )
  return name[: -len('.tar')]


def _files(tar: tarfile.TarFile, where: str) -> Iterator[tarfile.TarInfo]:
  """The regular-file members; anything else is skipped with a count."""
  skipped = 0
  for member in tar:
    if member.isfile():
      yield member
    else:
      skipped += 1
  if skipped:
    _log.warning('%s: skipped %d members that are not files.', where, skipped)
