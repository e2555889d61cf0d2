"""Reading the member list of a tar from its headers, and checking the tar.

Every tar the build reads (an archive, each inner `<wnid>.tar` of train) is
checked as its headers are read, so a damaged archive fails, naming the
archive, the member and the byte where it broke, instead of giving a smaller
dataset:
- its size must be a multiple of tar's 512-byte block;
- its member list must end with tar's end-of-archive marker (a zero block),
  followed by nothing but zero padding: Python's tarfile stops without a word
  at a damaged header or at a cut that falls between two members;
- its members follow the rule of `TarView._members`: directories, links and
  other non-files, and hidden files (`.DS_Store`), are skipped and reported;
  every other member must be named exactly like the archive's images.

Plain ustar/GNU headers (every ImageNet tar) are read directly
(`tar_headers`); anything else goes through Python's tarfile, which gives the
errors and skip records.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable, Generator, Iterator, MutableMapping
from typing import BinaryIO, TypeVar

from etils import epath

from imagenet2012_local.sources import archive_facts
from imagenet2012_local import errors
from imagenet2012_local.sources import tar_headers
from imagenet2012_local.sources import storage

_READ_SIZE = 1 << 20  # Large reads: tarfile's 10 KiB default costs ~14M calls on ImageNet.
BLOCK_SIZE = tarfile.BLOCKSIZE
# Zero padding allowed after the end-of-archive marker: tar pads to 10 KiB
# records (64 KiB allows blocking factors up to 128); more means a zero block
# inside the data, e.g. where a preallocated download stopped.
_MAX_END_PADDING = 64 << 10


_T = TypeVar('_T')


class ArchiveError(errors.Imagenet2012LocalError):
  """An archive is not a readable ImageNet tar."""


def check_tar_size(path: epath.PathLike, size: int) -> None:
  """Fails unless `size` is a whole number of tar blocks: a cheap first check.

  Raises:
    ArchiveError: the file cannot be a complete tar.
  """
  path = epath.Path(path)
  with storage.open_read(path) as f:
    _check_size(str(path), path.name, size, f)


def _check_size(where: str, archive_name: str, size: int, f: BinaryIO) -> None:
  """`check_tar_size` for the tar of `size` bytes that `f` is positioned at."""
  if size % BLOCK_SIZE:
    raise ArchiveError(errors.two_lines(
        f'{where} is {size:,} bytes, not a multiple of {BLOCK_SIZE}, so it is'
        f' not a whole tar archive{_what_it_looks_like(f.read(BLOCK_SIZE))}',
        download_again(archive_name),
    ))


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
    view = _TarView(path, f, start, size, naming, skipped, inner_name)
    members = [(name, start + offset, size) for name, offset, size in view.index()]
  return members, skipped


def plain_index_steps(
    path: epath.Path, lookup: BinaryIO, start: int, size: int,
    naming: archive_facts.Naming, inner_name: str,
    on_member: Callable[[str, int, int], None] | None = None,
) -> Generator[int, None, list[tuple[str, int, int]] | None]:
  """`index_tar`'s members of a plain tar, one header at a time (see
  `_TarView.plain_steps`, which calls `on_member`), read through `lookup`;
  None for a tar that is not plain: `index_tar` reads it then, and reports
  what it must.

  Raises:
    ArchiveError: the tar's size is not a whole number of blocks.
  """
  view = _TarView(path, lookup, start, size, naming, {}, inner_name)
  found = yield from view.plain_steps(on_member)
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
  """What a generator of `plain_steps` returns, run to its end."""
  while True:
    try:
      next(steps)
    except StopIteration as done:
      return done.value


class _TarView:
  """One tar being read: a whole archive, or an inner `<wnid>.tar` of train.

  Knows where it lies in the archive file, so errors name the archive, the
  member and the absolute byte offset.
  """

  def __init__(
      self,
      archive: epath.Path,
      lookup: BinaryIO,
      start: int,
      size: int,
      naming: archive_facts.Naming,
      skipped: MutableMapping[str, str],
      inner_name: str = '',
  ):
    """A view of [start, start + size) of `archive`; checks the size.

    Args:
      archive: the archive file.
      lookup: `archive` opened for reading by offset.
      start: where the tar starts in the archive file.
      size: its size in bytes.
      naming: how its members must be named.
      skipped: receives {member: why} for each member skipped.
      inner_name: `<wnid>.tar` for an inner train tar, else ''.
    """
    self.archive = archive
    self._lookup = lookup
    self.start = start
    self.size = size
    self._naming = naming
    self._skipped = skipped
    self._where = f'{archive}/{inner_name}' if inner_name else str(archive)
    self._prefix = f'{inner_name}/' if inner_name else ''
    self._last: tarfile.TarInfo | None = None  # For messages.
    lookup.seek(start)
    _check_size(self._where, archive.name, size, lookup)

  def index(self) -> list[tuple[str, int, int]]:
    """(name, data offset in this tar, size) of each accepted member, read by
    seeking over their data."""
    plain = self._plain_index()
    if plain is not None:
      return plain
    # Anything else (skipped members, extended headers, damage): tarfile
    # reads it, and `_members` skips or reports what it must.
    return [
        (member.name, member.offset_data, member.size)
        for _, member in self._members(
            _Slice(self._lookup, self.start, self.size)
        )
    ]

  def _plain_index(self) -> list[tuple[str, int, int]] | None:
    """`index` of a tar of nothing but regular files named like `_naming`,
    in plain ustar or GNU headers, that ends properly (every ImageNet tar);
    None for any other tar.

    tarfile decodes every field of each of ImageNet's 1.3 M headers; reading
    just the fields that matter (`tar_headers`) costs a fraction of that.
    """
    return _run(self.plain_steps())

  def plain_steps(
      self, on_member: Callable[[str, int, int], None] | None = None
  ) -> Generator[int, None, list[tuple[str, int, int]] | None]:
    """`_plain_index` one header at a time: yields the archive offset of
    each header before it reads it, so that a caller can have it read ahead.
    `on_member` gets each member's (name, archive offset, size) as found."""
    found = []
    pos = 0
    while pos + BLOCK_SIZE <= self.size:
      yield self.start + pos
      self._lookup.seek(self.start + pos)
      header = self._lookup.read(BLOCK_SIZE)
      if header[0] == 0:  # The end-of-archive marker, if all zero.
        ends_well = header.count(0) == BLOCK_SIZE and not self._end_problem(pos)
        return found if ends_well else None
      name = tar_headers.plain_file_name(header)
      if name is None or not self._naming.matches(name):
        return None
      size = tar_headers.file_size(header)
      if size is None or pos + BLOCK_SIZE + size > self.size:
        return None
      found.append((name, pos + BLOCK_SIZE, size))
      if on_member:
        on_member(name, self.start + pos + BLOCK_SIZE, size)
      pos += BLOCK_SIZE + -(-size // BLOCK_SIZE) * BLOCK_SIZE
    return None

  def _members(self, fileobj: BinaryIO) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Yields the members named like images. The others:

    - those `tar_headers.skip_reason` gives a reason for are skipped and
      recorded; their data is never read, and no member name is ever used as
      a path;
    - any other name fails the build: members must be named exactly like the
      images, with no folder part.
    At the end, checks that the tar ends properly (see the module docstring).
    """
    tar = None
    try:
      tar = tarfile.open(
          fileobj=fileobj, mode='r:', bufsize=_READ_SIZE
      )
      for member in tar:
        reason = tar_headers.skip_reason(member)
        if reason:
          self._skipped[self._prefix + member.name] = reason
        elif not self._naming.matches(member.name) or member.issparse():
          raise self._error(
              f'member {member.name!r} (header at byte'
              f' {self.start + member.offset:,}) is not a file named like'
              f' {self._naming.shape}',
              how_to_fix=(
                  f'Use the official {self.archive.name}, or re-pack it with'
                  f' only {self._naming.shape} files, at the top level (no'
                  ' folders).'
              ),
          )
        else:
          yield tar, member
        self._last = member
      end = tar.offset
    except tarfile.TarError as e:
      if tar is None:
        self._lookup.seek(self.start)
        looks_like = _what_it_looks_like(self._lookup.read(BLOCK_SIZE))
        raise self._error(
            f'not a tar archive{looks_like}: no valid tar header at byte'
            f' {self.start:,} ({e})'
        ) from e
      if self._last and tar.offset > self.size:
        raise self._cut_off(self._last) from e
      raise self._error(
          f'unreadable tar header at byte {self.start + tar.offset:,}'
          f'{self._after()} ({e})'
      ) from e
    finally:
      if tar is not None:
        tar.close()
    self._check_end(end)

  def _check_end(self, end: int) -> None:
    """Only zero blocks may follow the last member: see the module docstring."""
    problem = self._end_problem(end)
    if problem:
      raise self._error(problem)

  def _end_problem(self, end: int) -> str | None:
    """What is wrong with the tar's end, if the member list ends at `end`."""
    padding = self.size - end
    at = f'at byte {self.start + end:,}{self._after()}'
    self._lookup.seek(self.start + end)
    first = self._lookup.read(min(padding, BLOCK_SIZE))
    if first.count(0) != len(first):
      return f'unreadable tar header {at} (damaged or cut off)'
    if len(first) < BLOCK_SIZE:
      return f'ends {at}, without the end-of-archive marker: it is cut off'
    rest = padding - BLOCK_SIZE
    if rest > _MAX_END_PADDING or self._lookup.read(rest).count(0) != rest:
      return (
          f'a zero block {at} ends the member list, yet {padding:,} bytes'
          ' follow: the tar is damaged, or its download stopped there'
      )
    return None

  def _cut_off(self, member: tarfile.TarInfo) -> ArchiveError:
    start = self.start + member.offset_data
    return self._error(
        f'member {member.name!r} (bytes {start:,} to {start + member.size:,})'
        f' is cut off: the tar ends at byte {self.start + self.size:,}'
    )

  def _after(self) -> str:
    return f', after member {self._last.name!r}' if self._last else ''

  def _error(self, what: str, how_to_fix: str | None = None) -> ArchiveError:
    """`{tar}: {what}.` and, on the next line, what to do."""
    return ArchiveError(errors.two_lines(
        f'{self._where}: {what}',
        how_to_fix or download_again(self.archive.name),
    ))


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


def _what_it_looks_like(head: bytes) -> str:
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
