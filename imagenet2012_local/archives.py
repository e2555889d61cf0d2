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
import logging
import tarfile
from collections.abc import Callable, Iterator
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
  wnid = _class_dir(member, archive)
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
    on_progress: Callable[[int], None] | None = None,
) -> list[Member]:
  """Every image of an archive with its byte range, in archive order.

  Reads only tar headers (about 1 KB per image), seeking over the image data.

  Args:
    path: the archive; any path `epath` opens (local, gs://, ...).
    nested: True for the train layout (a tar of `<wnid>.tar`).
    on_progress: called with the number of archive bytes covered so far.
  """
  path = epath.Path(path)
  members = []
  with path.open('rb') as f:
    try:
      with tarfile.open(fileobj=f, mode='r:') as tar:
        for member in _files(tar, str(path)):
          if nested:
            members.extend(_index_inner(tar, member, str(path)))
          else:
            members.append(
                Member(member.name, None, member.offset_data, member.size)
            )
          if on_progress:
            on_progress(member.offset_data + member.size)
    except tarfile.TarError as e:
      raise ArchiveError(f'{path} is not a readable tar archive: {e}') from e
  return members


def _index_inner(
    outer: tarfile.TarFile, member: tarfile.TarInfo, archive: str
) -> Iterator[Member]:
  wnid = _class_dir(member, archive)
  where = f'{archive}/{member.name}'
  try:
    with tarfile.open(fileobj=outer.extractfile(member), mode='r:') as inner:
      for image in _files(inner, where):
        offset = member.offset_data + image.offset_data
        yield Member(image.name, wnid, offset, image.size)
  except tarfile.TarError as e:
    raise ArchiveError(f'{where} is not a readable tar archive: {e}') from e


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


def _class_dir(member: tarfile.TarInfo, archive: str) -> str:
  """The wnid of a train archive member `<wnid>.tar`."""
  if not member.name.endswith('.tar'):
    raise ArchiveError(
        f'{archive}: member {member.name!r} is not a <wnid>.tar; is this the'
        ' train archive ILSVRC2012_img_train.tar?'
    )
  return member.name[: -len('.tar')]


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
