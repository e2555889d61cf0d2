"""The checksum tables: known copies of the archives, by size and digest.

On-disk format (`checksums/*.tsv`, and extra tables named in
$IMAGENET2012_LOCAL_CHECKSUMS): UTF-8 text, one archive copy per line,
`name<TAB>size<TAB>md5<TAB>sha256`; `-` for an unknown size or SHA-256; lines
starting with `#` are comments. A file name may have several rows (copies).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import os
import queue
import string
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from etils import epath

from imagenet2012_local import errors
from imagenet2012_local import settings

_TABLES_PACKAGE = 'imagenet2012_local.checksums'
# The digest's reads: a thread reads the next pieces while the caller hashes
# this one, so a digest takes max(read, hash), not their sum (a cold disk and
# SHA-256 on one core take the same order of time a GB: docs/performance.md).
# Reads and hashes of 1 MiB release the GIL; 8 pieces ahead hold 8 MiB.
# Files without `readinto` (tf.io.gfile's, for cloud storage) are read 8 MiB
# a request, since each request costs a round trip of milliseconds.
READ_PIECE = 1 << 20
CLOUD_READ_PIECE = 8 << 20
PIECES_AHEAD = 8
# The digests an archive can be checked with: hashlib name -> name in messages.
DIGEST_NAMES = {'md5': 'MD5', 'sha256': 'SHA-256'}
_HOW_TO_FIX_TABLE = (
    'Fix or remove that line: each holds name<TAB>size<TAB>md5<TAB>sha256,'
    ' with - for an unknown size or SHA-256 (# starts a comment line).'
)


class ChecksumTableError(errors.Imagenet2012LocalError, ValueError):
  """A checksum table cannot be read, or a line of it is malformed."""


@dataclasses.dataclass(frozen=True)
class ArchiveDigest:
  """One known copy of an archive: a row of a checksum table.

  `size` is None where the table does not know it ('-'); the MD5 still counts.
  `sha256` is '' where the table does not know it. `table` is the file name of
  the table the row came from (`known_archives`), for messages.
  """

  name: str
  size: int | None
  md5: str
  sha256: str = ''
  table: str = ''

  def digest(self, algorithm: str) -> str:
    """The known digest by hashlib name ('md5' or 'sha256'); '' if unknown."""
    return getattr(self, algorithm)


def read_table(path: str | os.PathLike[str]) -> list[ArchiveDigest]:
  """Parses a checksum table: `name size md5 sha256`, tab-separated, `#` comments.

  Raises:
    ChecksumTableError: the file cannot be read, or a line is not such a row
      (a digest that is not hexadecimal, or not its length, would never match
      and turn the gate into a wrong-digest error on the right archive).
  """
  try:
    text = epath.Path(path).read_text()
  except (OSError, UnicodeDecodeError) as e:
    why = 'not UTF-8 text' if isinstance(e, UnicodeDecodeError) else e.strerror
    raise ChecksumTableError(errors.two_lines(
        f'Cannot read the checksum table {path} ({why or e})',
        f'Check the paths in ${settings.EXTRA_TABLES_ENV_VAR} (separated by'
        f' {os.pathsep}), or unset it.',
    )) from e
  rows = []
  for number, line in enumerate(text.splitlines(), start=1):
    if not line.strip() or line.startswith('#'):
      continue
    fields = line.split('\t')
    problem = _row_problem(fields)
    if problem:
      raise ChecksumTableError(errors.two_lines(
          f'{path}, line {number}: {problem}', _HOW_TO_FIX_TABLE
      ))
    name, size, md5, sha256 = fields
    rows.append(
        ArchiveDigest(
            name=name,
            size=None if size == '-' else int(size),
            md5=md5.lower(),  # hashlib's hexdigest() is lower case.
            sha256='' if sha256 == '-' else sha256.lower(),
        )
    )
  return rows


def _row_problem(fields: list[str]) -> str | None:
  """What is wrong with a table row's tab-separated fields; None if nothing."""
  if len(fields) != 4:
    return (
        f'{len(fields)} tab-separated fields instead of 4 (name, size, md5,'
        ' sha256)'
    )
  name, size, md5, sha256 = fields
  if not name.strip():
    return 'no archive name'
  if size != '-' and not (size.isascii() and size.isdigit()):
    return f'the size {size!r} is not a whole number of bytes'
  return _digest_problem('md5', md5) or (
      None if sha256 == '-' else _digest_problem('sha256', sha256)
  )


def _digest_problem(algorithm: str, digest: str) -> str | None:
  """What is wrong with a table's digest by hashlib name; None if nothing."""
  digits = hashlib.new(algorithm).digest_size * 2
  if len(digest) == digits and all(c in string.hexdigits for c in digest):
    return None
  return f'the {DIGEST_NAMES[algorithm]} {digest!r} is not {digits} hexadecimal digits'


def write_table(
    path: str | os.PathLike[str],
    archives: Iterable[str | os.PathLike[str]],
    comment: str,
) -> None:
  """Writes a checksum table for `archives`, computing size, MD5 and SHA-256."""
  lines = [f'# {line}' for line in comment.splitlines()]
  lines.append('# name\tsize\tmd5\tsha256')
  for archive in sorted(archives, key=lambda p: Path(p).name):
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(archive, 'rb') as f:
      for chunk in chunks(f):
        md5.update(chunk)
        sha256.update(chunk)
    size = Path(archive).stat().st_size
    lines.append(
        f'{Path(archive).name}\t{size}\t{md5.hexdigest()}\t{sha256.hexdigest()}'
    )
  Path(path).write_text('\n'.join(lines) + '\n')


def known_archives() -> dict[str, list[ArchiveDigest]]:
  """All known archive copies by file name: the bundled tables plus extra ones.

  Extra tables (e.g. for benchmark archives) are named in
  $IMAGENET2012_LOCAL_CHECKSUMS, separated by os.pathsep.
  """
  tables = [
      entry
      for entry in importlib.resources.files(_TABLES_PACKAGE).iterdir()
      if entry.name.endswith('.tsv')
  ]
  tables += settings.extra_checksum_tables()
  by_name: dict[str, list[ArchiveDigest]] = {}
  for table in tables:
    for row in read_table(table):
      by_name.setdefault(row.name, []).append(dataclasses.replace(row, table=table.name))
  return by_name


@functools.cache
def digests_fastest_first() -> tuple[str, ...]:
  """The hashlib names of DIGEST_NAMES, the fastest on this CPU first.

  Timed on a few MiB (a few milliseconds), best of three, once per process.
  """

  sample = bytes(4 << 20)

  def seconds(algorithm: str) -> float:
    times = []
    for _ in range(3):
      start = time.perf_counter()
      hashlib.new(algorithm, sample)
      times.append(time.perf_counter() - start)
    return min(times)

  return tuple(sorted(DIGEST_NAMES, key=seconds))


def chunks(f: BinaryIO) -> Iterator[bytes | memoryview]:
  """The file's bytes in order, in pieces read ahead on a thread of their own.

  Each piece is valid until the next is asked for (buffers are reused). A read
  error is raised here; stopping early stops the reading thread.
  """
  reuse = hasattr(f, 'readinto')
  free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
  full: queue.SimpleQueue[tuple[bytearray, bytes | memoryview] | BaseException]
  full = queue.SimpleQueue()
  for _ in range(PIECES_AHEAD):
    free.put(bytearray(READ_PIECE if reuse else 0))

  def read_ahead() -> None:
    try:
      while (buffer := free.get()) is not None:
        if reuse:
          piece = memoryview(buffer)[: f.readinto(buffer)]
        else:
          piece = f.read(CLOUD_READ_PIECE)
        full.put((buffer, piece))
        if not piece:
          return
    except BaseException as e:  # pylint: disable=broad-except
      full.put(e)  # Raised by the caller, in its own thread.

  reader = threading.Thread(target=read_ahead, name='read-ahead', daemon=True)
  reader.start()
  try:
    while not isinstance(item := full.get(), BaseException):
      buffer, piece = item
      if not piece:
        return
      yield piece
      free.put(buffer)
    raise item
  finally:
    free.put(None)  # Reached after at most PIECES_AHEAD more reads.
    reader.join()
