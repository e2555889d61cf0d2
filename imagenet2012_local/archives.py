"""Reading images straight out of the ImageNet tars.

Nothing is extracted to disk and no inner tar is held in memory: the outer tar
is streamed once, front to back, and each inner `<wnid>.tar` is streamed from
inside it, so memory holds one image at a time. Every byte read passes through
an optional callback, which is how the MD5 gate sees the archive without a
second pass.
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
        for member, fileobj in _files(tar, str(path)):
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
  if not member.name.endswith('.tar'):
    raise ArchiveError(
        f'{archive}: member {member.name!r} is not a <wnid>.tar; is this the'
        ' train archive ILSVRC2012_img_train.tar?'
    )
  wnid = member.name[: -len('.tar')]
  where = f'{archive}/{member.name}'
  try:
    with tarfile.open(fileobj=fileobj, mode='r|') as inner:
      for image, image_file in _files(inner, where):
        yield Image(image.name, image_file.read(), class_dir=wnid)
  except tarfile.TarError as e:
    raise ArchiveError(f'{where} is not a readable tar archive: {e}') from e


def _files(
    tar: tarfile.TarFile, where: str
) -> Iterator[tuple[tarfile.TarInfo, BinaryIO]]:
  """Regular-file members with an open reader; anything else is skipped."""
  skipped = 0
  for member in tar:
    if member.isfile():
      yield member, tar.extractfile(member)
    else:
      skipped += 1
  if skipped:
    _log.warning('%s: skipped %d members that are not files.', where, skipped)
