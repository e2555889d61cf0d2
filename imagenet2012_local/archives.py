"""Reading images straight out of the ImageNet tars.

Nothing is extracted to disk and no inner tar is held in memory. Two ways in:
- `iter_images` streams the outer tar once, front to back, and each inner
  `<wnid>.tar` from inside it; every byte read can pass through a callback,
  which is how the checksum gate sees the archive without a second pass.
- `index_archive` reads only the tar headers and returns each image's byte
  range, so shards can be written in any order by reading images by offset.

Both check every tar (the archive and each inner train tar) as they read it, so
a damaged archive fails, naming the archive, the member and the byte where it
broke, instead of giving a smaller dataset:
- its size must be a multiple of tar's 512-byte block;
- its member list must end with tar's end-of-archive marker (a zero block),
  followed by nothing but zero padding: Python's tarfile stops without a word
  at a damaged header or at a cut that falls between two members;
- its members follow the rule of `_TarView._members`: directories, links and
  other non-files, and hidden files (`.DS_Store`), are skipped and reported;
  every other member must be named exactly like the archive's images.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import BinaryIO

from etils import epath

_READ_SIZE = 1 << 20  # Large reads: tarfile's 10 KiB default costs ~14M calls on ImageNet.
BLOCK_SIZE = tarfile.BLOCKSIZE
# Zero padding allowed after the end-of-archive marker: tar pads to 10 KiB
# records (64 KiB allows blocking factors up to 128); more means a zero block
# inside the data, e.g. where a preallocated download stopped.
_MAX_END_PADDING = 64 << 10
DOWNLOAD_PAGE = 'https://image-net.org/download-images'

_log = logging.getLogger(__name__)


class ArchiveError(Exception):
  """An archive is not a readable ImageNet tar."""


@dataclasses.dataclass(frozen=True)
class Naming:
  """How the members of an archive are named: a pattern, and its shape in words."""

  pattern: re.Pattern[str]
  shape: str

  def matches(self, name: str) -> bool:
    return self.pattern.fullmatch(name) is not None


# ImageNet's own names: the only members an archive's split is built from.
CLASS_TARS = Naming(re.compile(r'n\d{8}\.tar'), '<wnid>.tar')
TRAIN_IMAGES = Naming(re.compile(r'n\d{8}_\d+\.JPEG'), '<wnid>_<n>.JPEG')
VALIDATION_IMAGES = Naming(
    re.compile(r'ILSVRC2012_val_(\d{8})\.JPEG'), 'ILSVRC2012_val_<8 digits>.JPEG'
)
TEST_IMAGES = Naming(
    re.compile(r'ILSVRC2012_test_\d{8}\.JPEG'), 'ILSVRC2012_test_<8 digits>.JPEG'
)
_FLAT_IMAGES = Naming(
    re.compile(r'ILSVRC2012_(?:val|test)_\d{8}\.JPEG'),
    f'{VALIDATION_IMAGES.shape} or {TEST_IMAGES.shape}',
)


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


def check_tar_size(path: epath.PathLike, size: int) -> None:
  """Fails unless `size` is a whole number of tar blocks: a cheap first check.

  Raises:
    ArchiveError: the file cannot be a complete tar.
  """
  path = epath.Path(path)
  with path.open('rb') as f:
    _check_size(str(path), path.name, size, f)


def _check_size(where: str, archive_name: str, size: int, f: BinaryIO) -> None:
  """`check_tar_size` for the tar of `size` bytes that `f` is positioned at."""
  if size % BLOCK_SIZE:
    raise ArchiveError(
        f'{where} is {size:,} bytes, not a multiple of {BLOCK_SIZE}, so it is'
        f' not a whole tar archive{_what_it_looks_like(f.read(BLOCK_SIZE))}.\n'
        + _download_again(archive_name)
    )


def iter_images(
    path: epath.PathLike,
    *,
    nested: bool,
    image_names: Naming | None = None,
    on_bytes: Callable[[bytes], None] | None = None,
    skipped: MutableMapping[str, str] | None = None,
) -> Iterator[Image]:
  """Yields every image of an archive in archive order.

  Args:
    path: the archive; any path `epath` opens (local, gs://, ...).
    nested: True for the train layout (a tar of `<wnid>.tar`), False for a flat
      tar of images (validation, test).
    image_names: how images must be named; default ImageNet's names.
    on_bytes: called with every byte of the archive, in order, exactly once;
      only when the iteration runs to the end does it see the whole file.
    skipped: receives {member: why} for each member skipped as not an image.

  Raises:
    ArchiveError: the archive is damaged or holds a member of an unknown name.
  """
  path = epath.Path(path)
  image_names = _default_naming(nested, image_names)
  skipped = {} if skipped is None else skipped
  count = 0
  # `raw` is read front to back; `lookup` by offset, to check the tars' ends.
  with path.open('rb') as raw, path.open('rb') as lookup:
    reader = _ObservedReader(raw, on_bytes) if on_bytes else raw
    outer = _TarView(
        path,
        lookup,
        start=0,
        size=path.stat().length,
        naming=CLASS_TARS if nested else image_names,
        skipped=skipped,
    )
    for member, fileobj in outer.stream(reader):
      if not nested:
        count += 1
        yield Image(member.name, outer.read(fileobj, member), class_dir=None)
        continue
      inner = outer.inner(member, image_names)
      for image, image_file in inner.stream(fileobj):
        count += 1
        yield Image(
            image.name, inner.read(image_file, image), class_dir=inner.class_dir
        )
    if on_bytes:
      reader.drain()
  _finish(path, image_names, count, skipped)


def index_archive(
    path: epath.PathLike,
    *,
    nested: bool,
    image_names: Naming | None = None,
    skipped: MutableMapping[str, str] | None = None,
    map_fn: Callable[..., Iterable[tuple[list[Member], dict[str, str]]]] = map,
) -> list[Member]:
  """Every image of an archive with its byte range, in archive order.

  Reads only tar headers (about 1 KB per image), seeking over the image data.

  Args:
    path: the archive; any path `epath` opens (local, gs://, ...).
    nested: True for the train layout (a tar of `<wnid>.tar`).
    image_names: how images must be named; default ImageNet's names.
    skipped: receives {member: why} for each member skipped as not an image.
    map_fn: how to map `index_inner_tar` over the inner tars, in order: e.g. a
      process pool's `imap`, since inner tars can be indexed in parallel.

  Raises:
    ArchiveError: the archive is damaged or holds a member of an unknown name.
  """
  path = epath.Path(path)
  image_names = _default_naming(nested, image_names)
  skipped = {} if skipped is None else skipped
  members, top_skipped = _index_tar(
      path, 0, path.stat().length, CLASS_TARS if nested else image_names
  )
  skipped.update(top_skipped)
  if nested:
    inner_tars, members = members, []
    for images, inner_skipped in map_fn(
        functools.partial(index_inner_tar, os.fspath(path), image_names=image_names),
        inner_tars,
    ):
      members += images
      skipped.update(inner_skipped)
  _finish(path, image_names, len(members), skipped)
  return members


def index_inner_tar(
    path: str, inner: Member, image_names: Naming = TRAIN_IMAGES
) -> tuple[list[Member], dict[str, str]]:
  """The images of one `<wnid>.tar` member of the train archive, and the
  members skipped as not images ({name: why})."""
  return _index_tar(
      epath.Path(path), inner.offset, inner.size, image_names, inner.file_name
  )


def _index_tar(
    path: epath.Path,
    start: int,
    size: int,
    naming: Naming,
    inner_name: str = '',
) -> tuple[list[Member], dict[str, str]]:
  """The members of the tar at [start, start + size) of `path`, and the skipped."""
  skipped: dict[str, str] = {}
  with path.open('rb') as f:
    view = _TarView(path, f, start, size, naming, skipped, inner_name)
    members = [
        Member(name, view.class_dir, start + offset, size)
        for name, offset, size in view.index()
    ]
  return members, skipped


def read_member(archive: BinaryIO, member: Member) -> bytes:
  """The bytes of `member` from the open archive file it was indexed in."""
  archive.seek(member.offset)
  data = archive.read(member.size)
  if len(data) != member.size:
    name = getattr(archive, 'name', 'the archive')
    raise ArchiveError(
        f'{name}: image {member.file_name} (bytes {member.offset:,} to'
        f' {member.offset + member.size:,}) is cut off: the file ends at byte'
        f' {member.offset + len(data):,}.\n'
        + _download_again(os.path.basename(name))
    )
  return data


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
      naming: Naming,
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
    self.class_dir = inner_name.removesuffix('.tar') if inner_name else None
    self._last: tarfile.TarInfo | None = None  # For messages.
    lookup.seek(start)
    _check_size(self._where, archive.name, size, lookup)

  def inner(self, member: tarfile.TarInfo, naming: Naming) -> _TarView:
    """The view of an inner `<wnid>.tar` yielded by `stream`."""
    return _TarView(
        self.archive,
        self._lookup,
        self.start + member.offset_data,
        member.size,
        naming,
        self._skipped,
        member.name,
    )

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
            _Slice(self._lookup, self.start, self.size), stream=False
        )
    ]

  def _plain_index(self) -> list[tuple[str, int, int]] | None:
    """`index` of a tar of nothing but regular files named like `_naming`,
    in plain ustar or GNU headers, that ends properly (every ImageNet tar);
    None for any other tar.

    tarfile spends ~25 µs on a header (ImageNet has 1.3 M: ~35 s); reading
    just the fields that matter takes a third of that.
    """
    found = []
    pos = 0
    while pos + BLOCK_SIZE <= self.size:
      self._lookup.seek(self.start + pos)
      header = self._lookup.read(BLOCK_SIZE)
      if header[0] == 0:  # The end-of-archive marker, if all zero.
        ends_well = header.count(0) == BLOCK_SIZE and not self._end_problem(pos)
        return found if ends_well else None
      name = _plain_file_name(header)
      if name is None or not self._naming.matches(name):
        return None
      size = _octal(header[124:136])
      if size is None or pos + BLOCK_SIZE + size > self.size:
        return None
      found.append((name, pos + BLOCK_SIZE, size))
      pos += BLOCK_SIZE + -(-size // BLOCK_SIZE) * BLOCK_SIZE
    return None

  def stream(self, fileobj: BinaryIO) -> Iterator[tuple[tarfile.TarInfo, BinaryIO]]:
    """The accepted members and their data (for `read`), front to back."""
    for tar, member in self._members(fileobj, stream=True):
      yield member, tar.extractfile(member)

  def read(self, fileobj: BinaryIO, member: tarfile.TarInfo) -> bytes:
    """The data of a member yielded by `stream`."""
    try:
      return fileobj.read()
    except tarfile.TarError as e:
      raise self._cut_off(member) from e

  def _members(
      self, fileobj: BinaryIO, stream: bool
  ) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Yields the members named like images. The others:

    - anything but a regular file (directory, symbolic or hard link, device,
      FIFO) and hidden files (the last part of the name starts with '.', as
      `.DS_Store` and `._*` do) are skipped and recorded; their data is never
      read, and no member name is ever used as a path;
    - any other name fails the build: members must be named exactly like the
      images, with no folder part.
    At the end, checks that the tar ends properly (see the module docstring).
    """
    tar = None
    try:
      tar = tarfile.open(
          fileobj=fileobj, mode='r|' if stream else 'r:', bufsize=_READ_SIZE
      )
      for member in tar:
        reason = _skip_reason(member)
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
    return ArchiveError(
        f'{self._where}: {what}.\n'
        + (how_to_fix or _download_again(self.archive.name))
    )


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


_USTAR_MAGICS = (b'ustar\x0000', b'ustar  \x00')  # POSIX, GNU.
_REGULAR_FILE_TYPES = (ord('0'), 0)


def _plain_file_name(header: bytes) -> str | None:
  """The name in a tar header, if it is a regular file's plain header whose
  checksum is right; else None."""
  if header[156] not in _REGULAR_FILE_TYPES or header[257:265] not in _USTAR_MAGICS:
    return None
  if header[257:263] == b'ustar\x00' and header[345] != 0:
    return None  # A POSIX name prefix: long names are left to tarfile.
  checksum = _octal(header[148:156])
  if checksum is None or checksum != sum(header) - sum(header[148:156]) + 256:
    return None  # 256: the checksum field counts as eight spaces.
  name = header[:100].split(b'\0', 1)[0]
  return name.decode('ascii') if name.isascii() else None


_OCTAL_FIELD = re.compile(rb' *([0-7]+) *(?:\0.*)?', re.DOTALL)


def _octal(field: bytes) -> int | None:
  """A tar header's number field: octal digits ended by NUL or space; None if
  it is not (e.g. GNU's base-256 for huge values)."""
  match = _OCTAL_FIELD.fullmatch(field)
  return int(match[1], 8) if match else None


def _skip_reason(member: tarfile.TarInfo) -> str | None:
  """Why a member is skipped as not an image, or None (see `_TarView._members`)."""
  if member.isdir():
    return 'a directory'
  if member.issym():
    return 'a symbolic link'
  if member.islnk():
    return 'a hard link'
  if not member.isfile():
    return 'a device or FIFO'
  if os.path.basename(member.name).startswith('.'):
    return 'a hidden file'
  return None


def _default_naming(nested: bool, image_names: Naming | None) -> Naming:
  return image_names or (TRAIN_IMAGES if nested else _FLAT_IMAGES)


def _finish(
    path: epath.Path,
    image_names: Naming,
    count: int,
    skipped: MutableMapping[str, str],
) -> None:
  """Logs the skipped members; fails when not a single image was found."""
  if skipped:
    _log.warning(
        '%s: skipped %d members that are not images, e.g. %s (all listed in'
        " the dataset's metadata, skipped_members).",
        path,
        len(skipped),
        ', '.join(list(skipped)[:3]),
    )
  if not count:
    raise ArchiveError(
        f'{path} holds no image named like {image_names.shape}, so it is not'
        f' the archive its name says.\nPut the official {path.name} from'
        f' {DOWNLOAD_PAGE} in the manual dir.'
    )


def _what_it_looks_like(head: bytes) -> str:
  """' (it is an HTML page...)' for the start of a web page, else ''."""
  if head.lstrip()[:15].lower().startswith((b'<!doctype html', b'<html')):
    return (
        ' (it is an HTML page: an error or login page saved under the'
        " archive's name?)"
    )
  return ''


def _download_again(name: str) -> str:
  return (
      f'Download {name} again from {DOWNLOAD_PAGE}; if you made it yourself,'
      ' write it again with tar.'
  )
