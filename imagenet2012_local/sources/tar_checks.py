"""What every tar must be, and the error that names where one is not.

Every tar the build reads (an archive, each inner `<wnid>.tar` of train) is
checked as its headers are read (`tar_reader`), so a damaged archive fails,
naming the archive, the member and the byte where it broke, instead of giving
a smaller dataset:
- its size must be a multiple of tar's 512-byte block (`check_size`);
- its member list must end with tar's end-of-archive marker (a zero block),
  followed by nothing but zero padding (`end_problem`): Python's tarfile stops
  without a word at a damaged header or at a cut that falls between two
  members;
- directories, links and other non-files, and hidden files (`.DS_Store`),
  are skipped and reported (`tar_headers.skip_reason`); every other member
  must be named exactly like the archive's images.
"""

from __future__ import annotations

import dataclasses
import tarfile
from typing import BinaryIO

from etils import epath

from imagenet2012_local import errors
from imagenet2012_local.sources import archive_facts

BLOCK_SIZE = tarfile.BLOCKSIZE
# Zero padding allowed after the end-of-archive marker: tar pads to 10 KiB
# records (64 KiB allows blocking factors up to 128); more means a zero block
# inside the data, e.g. where a preallocated download stopped.
_MAX_END_PADDING = 64 << 10


class ArchiveError(errors.Imagenet2012LocalError):
  """An archive is not a readable ImageNet tar."""


@dataclasses.dataclass(frozen=True)
class TarPlace:
  """Where one tar lies: a whole archive, or an inner `<wnid>.tar` of train,
  at [start, start + size) of the archive file; errors name it, and bytes by
  their offset in that file."""

  archive: epath.Path
  start: int
  size: int
  inner_name: str = ''  # `<wnid>.tar` for an inner train tar.

  @property
  def where(self) -> str:
    """The tar, in messages: the archive, or the archive/inner tar."""
    return f'{self.archive}/{self.inner_name}' if self.inner_name else str(self.archive)

  def error(self, what: str, how_to_fix: str | None = None) -> ArchiveError:
    """`{tar}: {what}.` and, on the next line, `how_to_fix` (by default,
    `download_again`)."""
    return ArchiveError(errors.two_lines(
        f'{self.where}: {what}', how_to_fix or download_again(self.archive.name)
    ))

  def check_size(self, f: BinaryIO) -> None:
    """Fails unless the tar, which `f` is positioned at, is a whole number
    of blocks.

    Raises:
      ArchiveError: it cannot be a complete tar.
    """
    if self.size % BLOCK_SIZE:
      raise ArchiveError(errors.two_lines(
          f'{self.where} is {self.size:,} bytes, not a multiple of'
          f' {BLOCK_SIZE}, so it is not a whole tar'
          f' archive{what_it_looks_like(f.read(BLOCK_SIZE))}',
          download_again(self.archive.name),
      ))

  def end_problem(self, f: BinaryIO, end: int, after: str = '') -> str | None:
    """What is wrong with the tar's end, read through `f`, if its member list
    ends at `end` (from its start); None if nothing is. `after` (', after
    member ...') goes into the message."""
    padding = self.size - end
    at = f'at byte {self.start + end:,}{after}'
    f.seek(self.start + end)
    first = f.read(min(padding, BLOCK_SIZE))
    if first.count(0) != len(first):
      return f'unreadable tar header {at} (damaged or cut off)'
    if len(first) < BLOCK_SIZE:
      return f'ends {at}, without the end-of-archive marker: it is cut off'
    rest = padding - BLOCK_SIZE
    if rest > _MAX_END_PADDING or f.read(rest).count(0) != rest:
      return (
          f'a zero block {at} ends the member list, yet {padding:,} bytes'
          ' follow: the tar is damaged, or its download stopped there'
      )
    return None


def what_it_looks_like(head: bytes) -> str:
  """' (it is an HTML page...)' for the start of a web page, else ''."""
  if head.lstrip()[:15].lower().startswith((b'<!doctype html', b'<html')):
    return (
        ' (it is an HTML page: an error or login page saved under the'
        " archive's name?)"
    )
  return ''


def download_again(name: str) -> str:
  """What to do about a damaged archive."""
  return (
      f'Download {name} again from {archive_facts.DOWNLOAD_PAGE}; if you made it yourself,'
      ' write it again with tar.'
  )
