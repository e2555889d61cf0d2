"""Reading the member list of a tar from its headers, the tar checked as it goes.

Every tar is checked as its headers are read (`tar_checks`: what a tar must
be, and the `ArchiveError` that names where it is not). Plain ustar/GNU
headers (every ImageNet tar) are read here, a few fields of each
(`tar_headers`); anything else goes through Python's tarfile
(`tarfile_members`), which gives the errors and skip records.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from typing import BinaryIO, TypeVar

from etils import epath

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import storage
from imagenet2012_local.sources import tar_checks
from imagenet2012_local.sources import tar_headers
from imagenet2012_local.sources import tarfile_members

# The checks' names that callers (the index, the image reads, the sources)
# take from here, beside the walk.
ArchiveError = tar_checks.ArchiveError
BLOCK_SIZE = tar_checks.BLOCK_SIZE
download_again = tar_checks.download_again

_T = TypeVar('_T')


def check_tar_size(path: epath.PathLike, size: int) -> None:
  """Fails unless `size` is a whole number of tar blocks: a cheap first check.

  Raises:
    ArchiveError: the file cannot be a complete tar.
  """
  path = epath.Path(path)
  with storage.open_read(path) as f:
    tar_checks.TarPlace(path, 0, size).check_size(f)


def index_tar(
    path: epath.Path,
    start: int,
    size: int,
    naming: archive_facts.Naming,
    inner_name: str = '',
) -> tuple[list[tuple[str, int, int]], dict[str, str]]:
  """The members of the tar at [start, start + size) of `path`, checked.

  Reads only headers (512 bytes per member), seeking over the data.

  Returns:
    (name, offset in `path` of its first data byte, size) of each member
    named like `naming`, in tar order; and {member: why} of those skipped.

  Raises:
    ArchiveError: the tar is damaged or holds a member of an unknown name.
  """
  skipped: dict[str, str] = {}
  with storage.open_read(path) as f:
    if storage.is_local(path):
      # A header is 512 bytes every ~110 KB: read-ahead would read the images
      # too.
      os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
    place = _checked_place(path, f, start, size, inner_name)
    found = _run(_plain_steps(place, f, naming))
    if found is None:
      # Anything else (skipped members, extended headers, damage): tarfile
      # reads it, and skips or reports what it must.
      found = tarfile_members.members(place, f, naming, skipped)
    members = [(name, start + offset, size) for name, offset, size in found]
  return members, skipped


def plain_index_steps(
    path: epath.Path, lookup: BinaryIO, start: int, size: int,
    naming: archive_facts.Naming, inner_name: str,
    on_member: Callable[[str, int, int], None] | None = None,
) -> Generator[int, None, list[tuple[str, int, int]] | None]:
  """`index_tar`'s members of a plain tar, one header at a time (see
  `_plain_steps`, which calls `on_member`), read through `lookup`; None for
  a tar that is not plain: `index_tar` reads it then, and reports what it
  must.

  Raises:
    ArchiveError: the tar's size is not a whole number of blocks.
  """
  place = _checked_place(path, lookup, start, size, inner_name)
  found = yield from _plain_steps(place, lookup, naming, on_member)
  return None if found is None else [(n, start + o, s) for n, o, s in found]


def plain_members(
    path: epath.Path, lookup: BinaryIO, start: int, size: int,
    naming: archive_facts.Naming, inner_name: str = '',
    on_member: Callable[[str, int, int], None] | None = None,
) -> list[tuple[str, int, int]] | None:
  """`plain_index_steps` run to the end: reads go forward only, so `lookup`
  may be a sequential read (`in_order_index`)."""
  return _run(plain_index_steps(path, lookup, start, size, naming, inner_name, on_member))


def _run(steps: Generator[int, None, _T]) -> _T:
  """What a generator of `_plain_steps` returns, run to its end."""
  while True:
    try:
      next(steps)
    except StopIteration as done:
      return done.value


def _checked_place(
    archive: epath.Path, lookup: BinaryIO, start: int, size: int, inner_name: str
) -> tar_checks.TarPlace:
  """Where the tar at [start, start + size) of `archive` lies, once its size
  is checked (through `lookup`, `archive` opened for reading by offset).

  Raises:
    ArchiveError: the tar's size is not a whole number of blocks.
  """
  place = tar_checks.TarPlace(archive, start, size, inner_name)
  lookup.seek(start)
  place.check_size(lookup)
  return place


def _plain_steps(
    place: tar_checks.TarPlace,
    lookup: BinaryIO,
    naming: archive_facts.Naming,
    on_member: Callable[[str, int, int], None] | None = None,
) -> Generator[int, None, list[tuple[str, int, int]] | None]:
  """(name, data offset in the tar, size) of each member of a tar of
  nothing but regular files named like `naming`, in plain ustar or GNU
  headers, that ends properly (every ImageNet tar); None for any other tar.
  One header at a time: yields the archive offset of each header before it
  reads it, so that a caller can have it read ahead; `on_member` gets each
  member's (name, archive offset, size) as found.

  tarfile decodes every field of each of ImageNet's 1.3 M headers; reading
  just the fields that matter (`tar_headers`) costs a fraction of that.
  """
  found = []
  pos = 0
  while pos + BLOCK_SIZE <= place.size:
    yield place.start + pos
    lookup.seek(place.start + pos)
    header = lookup.read(BLOCK_SIZE)
    if header[0] == 0:  # The end-of-archive marker, if all zero.
      ends_well = header.count(0) == BLOCK_SIZE and not place.end_problem(lookup, pos)
      return found if ends_well else None
    name = tar_headers.plain_file_name(header)
    if name is None or not naming.matches(name):
      return None
    size = tar_headers.file_size(header)
    if size is None or pos + BLOCK_SIZE + size > place.size:
      return None
    found.append((name, pos + BLOCK_SIZE, size))
    if on_member:
      on_member(name, place.start + pos + BLOCK_SIZE, size)
    pos += BLOCK_SIZE + -(-size // BLOCK_SIZE) * BLOCK_SIZE
  return None
