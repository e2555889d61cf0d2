"""The checksum gate: known archive sizes and digests, checked while archives are read.

Sizes are checked before anything is read. The digest is computed while the
build runs, not in a pass before it: on the fast path by `BackgroundHasher`, a
thread reading each archive sequentially while shards are written; on TFDS's
standard path from the very bytes it streams. A mismatch raises before the
build publishes anything. Archives that passed are remembered by
(path, size, mtime) so a rebuild does not hash them again.

Where the checksum table knows both digests of an archive, the one this CPU
computes faster is checked: SHA-256 runs at twice MD5's speed on CPUs with SHA
instructions (AMD since Zen, Intel since Ice Lake, ARMv8), and the digest, a
sequential pass on one core, is what bounds a verified build's time.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import json
import logging
import os
import tempfile
import threading
import time
from typing import BinaryIO
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from etils import epath
from tensorflow_datasets.core.utils import tqdm_utils

from imagenet2012_local import archives

VERIFY_ENV_VAR = 'IMAGENET2012_LOCAL_VERIFY'
EXTRA_TABLES_ENV_VAR = 'IMAGENET2012_LOCAL_CHECKSUMS'
CACHE_DIR_ENV_VAR = 'IMAGENET2012_LOCAL_CACHE_DIR'
_TABLES_PACKAGE = 'imagenet2012_local.checksums'
# Large reads: the hashing thread takes the GIL back after each one, and
# waits for it while the writer holds it; 32 MiB made 8 GB builds ~13 % faster
# than 4 MiB.
_HASH_CHUNK = 32 << 20
# The digests an archive can be checked with: hashlib name -> name in messages.
DIGEST_NAMES = {'md5': 'MD5', 'sha256': 'SHA-256'}

_log = logging.getLogger(__name__)


class ChecksumError(Exception):
  """An archive's size or digest differs from every known copy of it."""


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
      for chunk in _chunks(f):
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
  extra = os.environ.get(EXTRA_TABLES_ENV_VAR, '')
  tables += [epath.Path(p) for p in extra.split(os.pathsep) if p]
  by_name: dict[str, list[ArchiveDigest]] = {}
  for table in tables:
    for row in read_table(table):
      by_name.setdefault(row.name, []).append(row)
  return by_name


def flag(argument: bool | None, env_var: str, default: bool) -> bool:
  """A yes/no setting: the builder argument wins, then $`env_var`, then `default`.

  Raises:
    ValueError: the variable is set to something that is neither on nor off.
  """
  if argument is not None:
    return argument
  value = os.environ.get(env_var, '').strip().lower()
  if not value:
    return default
  if value in ('1', 'true', 'yes', 'on'):
    return True
  if value in ('0', 'false', 'no', 'off'):
    return False
  raise ValueError(
      f'{env_var}={value!r} is neither on nor off.\n'
      f'Set {env_var} to 1 (on) or 0 (off), or unset it for the default.'
  )


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


def verification_enabled(verify_checksums: bool | None) -> bool:
  """The builder argument wins; otherwise $IMAGENET2012_LOCAL_VERIFY (default on)."""
  return flag(verify_checksums, VERIFY_ENV_VAR, default=True)


_HOW_TO_FIX = (
    f'Re-download it from {archives.DOWNLOAD_PAGE} (a partial or'
    ' damaged copy gives a wrong dataset). If you re-packed it on purpose, turn'
    f' the check off with {VERIFY_ENV_VAR}=0 or'
    " tfds.builder('imagenet2012_local', verify_checksums=False)."
)


class ArchiveCheck:
  """The gate for one archive: size at once, a digest of the bytes the build reads.

  The digest is the fastest one (`digests_fastest_first`) that the table knows
  for every copy of that size; the metadata records the copy's MD5 either way.

  Usage: construct (checks the size, raises ChecksumError), feed every byte of
  the archive in order to `update` while reading it (only if `needs_hashing`),
  then call `finish` (raises ChecksumError on a wrong digest).
  """

  def __init__(self, path: str | os.PathLike[str], enabled: bool):
    self.path = _absolute(epath.Path(path))
    self.size, self._mtime = _size_and_mtime(self.path)
    self.algorithm = 'md5'  # Which digest `update` computes: see `_verify`.
    self._hash = hashlib.md5()
    # Known copies this archive may be; empty when there is nothing to hash.
    self._candidates: list[ArchiveDigest] = []
    self._verified_md5: str | None = None
    if not enabled:
      self.status = 'not verified: the check is turned off'
      return
    known = known_archives().get(self.path.name)
    if not known:
      self.status = 'not verified: no known checksum for this file name'
      _log.warning('%s: no known checksum, not verified.', self.path)
      return
    candidates = [k for k in known if k.size in (None, self.size)]
    if not candidates:
      sizes = ' or '.join(f'{k.size:,}' for k in known if k.size is not None)
      raise ChecksumError(
          f'{self.path} is {self.size:,} bytes; expected {sizes}.\n'
          + _HOW_TO_FIX
      )
    remembered = _load_cache().get(str(self.path), {})
    if any(remembered == self._cache_entry(k.md5) for k in candidates):
      self.status = 'verified (remembered from an earlier build)'
      self._verified_md5 = remembered['md5']
    else:
      self._verify(candidates)

  def _verify(self, candidates: list[ArchiveDigest]) -> None:
    """Gets ready to hash with the fastest digest all `candidates` know."""
    self.status = 'verifying'
    self._candidates = candidates
    self.algorithm = next(
        a
        for a in digests_fastest_first()
        if all(c.digest(a) for c in candidates)
    )
    self._hash = hashlib.new(self.algorithm)

  @property
  def needs_hashing(self) -> bool:
    """Whether the caller must feed the archive's bytes to `update`."""
    return bool(self._candidates)

  def update(self, data: bytes) -> None:
    """Adds the next bytes of the archive to the running digest."""
    self._hash.update(data)

  def finish(self) -> None:
    """Compares the digest of everything fed to `update`; remembers a pass."""
    if not self._candidates:
      return
    actual = self._hash.hexdigest()
    match = next(
        (k for k in self._candidates if k.digest(self.algorithm) == actual), None
    )
    if match is None:
      expected = ' or '.join(k.digest(self.algorithm) for k in self._candidates)
      raise ChecksumError(
          f'{self.path} has {DIGEST_NAMES[self.algorithm]} {actual}; expected'
          f' {expected}. Nothing was published.\n' + _HOW_TO_FIX
      )
    self.status = 'verified'
    self._candidates = []
    # A known copy's digests belong together: its MD5 is the one recorded.
    self._verified_md5 = match.md5
    _remember(str(self.path), self._cache_entry(match.md5))

  def summary(self) -> dict[str, object]:
    """Size, verified MD5 (None when not verified) and status, for metadata."""
    return {'bytes': self.size, 'md5': self._verified_md5, 'status': self.status}

  def _cache_entry(self, md5: str) -> dict[str, object]:
    return {'size': self.size, 'mtime': self._mtime, 'md5': md5}


class BackgroundHasher:
  """Hashes archives on a thread while shards are being written.

  File reads and hashlib release the GIL, so the digest is computed on a
  second core from its own sequential read. Use as a context manager; call
  `raise_if_failed` now and then to stop early, and `wait` at the end.
  """

  def __init__(self, checks: Iterable[ArchiveCheck]):
    self._checks = [c for c in checks if c.needs_hashing]
    self._error: ChecksumError | None = None
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, name='checksums', daemon=True)

  def __enter__(self) -> BackgroundHasher:
    self._thread.start()
    return self

  def __exit__(self, *exc_info) -> None:
    self._stop.set()
    self._thread.join()

  def _run(self) -> None:
    total = sum(check.size for check in self._checks)
    with tqdm_utils.tqdm(
        total=total,
        desc='Verifying checksums',
        unit='B',
        unit_scale=True,
        leave=False,
    ) as bar:
      for check in self._checks:
        with check.path.open('rb') as f:
          for chunk in _chunks(f):
            if self._stop.is_set():
              return
            check.update(chunk)
            bar.update(len(chunk))
        try:
          check.finish()
        except ChecksumError as e:
          self._error = e
          return

  def raise_if_failed(self) -> None:
    """Raises the first digest mismatch found so far, if any."""
    if self._error:
      raise self._error

  def wait(self) -> None:
    """Waits for every archive to be hashed; raises on a mismatch."""
    self._thread.join()
    self.raise_if_failed()


def _chunks(f: BinaryIO) -> Iterator[bytes | memoryview]:
  """The file's bytes in `_HASH_CHUNK` pieces, read into one reused buffer
  where the file allows it (no fresh 32 MiB of memory per read)."""
  if not hasattr(f, 'readinto'):
    while chunk := f.read(_HASH_CHUNK):
      yield chunk
    return
  buffer = memoryview(bytearray(_HASH_CHUNK))
  while size := f.readinto(buffer):
    yield buffer[:size]


def is_local(path: epath.PathLike) -> bool:
  """Whether `path` is on a local file system (not gs://, s3://, ...)."""
  return '://' not in os.fspath(path)


def _absolute(path: epath.Path) -> epath.Path:
  """Local paths made absolute (they key the cache); gs:// and such as given."""
  return path.expanduser().resolve() if is_local(path) else path


def _size_and_mtime(path: epath.Path) -> tuple[int, float]:
  """Size and modification time; nanoseconds for local files, so a rewrite
  within the same second still counts as a change."""
  if is_local(path):
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns
  stat = path.stat()
  return stat.length, stat.mtime


def _cache_file() -> Path:
  root = os.environ.get(CACHE_DIR_ENV_VAR) or os.path.join(
      os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'),
      'imagenet2012_local',
  )
  return Path(root) / 'verified_archives.json'


def _load_cache() -> Mapping[str, dict[str, object]]:
  try:
    return json.loads(_cache_file().read_text())
  except (OSError, ValueError):
    return {}


def _remember(path: str, entry: dict[str, object]) -> None:
  """Records a verified archive; written atomically, a failure only logs."""
  cache = dict(_load_cache())
  cache[path] = entry
  target = _cache_file()
  try:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        'w', dir=target.parent, delete=False, suffix='.tmp'
    ) as tmp:
      json.dump(cache, tmp, indent=1, sort_keys=True)
    os.replace(tmp.name, target)
  except OSError as e:
    _log.warning('Could not remember the verified archive %s: %s', path, e)
