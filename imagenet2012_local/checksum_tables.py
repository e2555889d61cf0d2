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
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from etils import epath

from imagenet2012_local import settings

_TABLES_PACKAGE = 'imagenet2012_local.checksums'
# Large reads: the hashing thread takes the GIL back after each one, and
# waited for it while shards were written in the same process (32 MiB made
# 8 GB builds ~13 % faster than 4 MiB then). Shards are now written by
# worker processes, so 8 MiB does, and keeps a full-count build's processes
# under 1 GB together.
HASH_CHUNK = 8 << 20
# The digests an archive can be checked with: hashlib name -> name in messages.
DIGEST_NAMES = {'md5': 'MD5', 'sha256': 'SHA-256'}


@dataclasses.dataclass(frozen=True)
class ArchiveDigest:
  """One known copy of an archive: a row of a checksum table.

  `size` is None where the table does not know it ('-'); the MD5 still counts.
  `sha256` is '' where the table does not know it.
  """

  name: str
  size: int | None
  md5: str
  sha256: str = ''

  def digest(self, algorithm: str) -> str:
    """The known digest by hashlib name ('md5' or 'sha256'); '' if unknown."""
    return getattr(self, algorithm)


def read_table(path: str | os.PathLike[str]) -> list[ArchiveDigest]:
  """Parses a checksum table: `name size md5 sha256`, tab-separated, `#` comments."""
  rows = []
  for line in epath.Path(path).read_text().splitlines():
    if not line.strip() or line.startswith('#'):
      continue
    name, size, md5, sha256 = line.split('\t')
    rows.append(
        ArchiveDigest(
            name=name,
            size=None if size == '-' else int(size),
            md5=md5,
            sha256='' if sha256 == '-' else sha256,
        )
    )
  return rows


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
      by_name.setdefault(row.name, []).append(row)
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
  """The file's bytes in `HASH_CHUNK` pieces, read into one reused buffer
  where the file allows it (no fresh 32 MiB of memory per read)."""
  if not hasattr(f, 'readinto'):
    while chunk := f.read(HASH_CHUNK):
      yield chunk
    return
  buffer = memoryview(bytearray(HASH_CHUNK))
  while size := f.readinto(buffer):
    yield buffer[:size]
