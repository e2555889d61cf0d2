"""The checksum gate: known archive sizes and digests, checked while archives are read.

Sizes are checked before anything is read. The digest is computed while the
build runs, not in a pass before it: by `BackgroundHasher`, a thread reading
each archive sequentially while shards are written. A mismatch raises before
the build publishes anything. Archives that passed are remembered by path
and `storage.file_identity` (device, inode, size, modification and change
times), so a rebuild of the very same bytes does not hash them again; the
metadata records them as verified either way, so that two builds' metadata
are the same bytes, and the log says the check was remembered.

Where the checksum table knows both digests of an archive, the one this CPU
computes faster is checked: SHA-256 runs at twice MD5's speed on CPUs with SHA
instructions (AMD since Zen, Intel since Ice Lake, ARMv8), and the digest, a
sequential pass on one core, is what bounds a verified build's time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.gate import checksum_tables
from imagenet2012_local.sources import direct_reads
from imagenet2012_local import errors
from imagenet2012_local import paths
from imagenet2012_local import settings
from imagenet2012_local.engine import state_files
from imagenet2012_local import tfds_internals
from imagenet2012_local.sources import storage

_log = logging.getLogger(__name__)


class ChecksumError(errors.Imagenet2012LocalError):
  """An archive's size or digest differs from every known copy of it."""


_HOW_TO_FIX = (
    f'Re-download it from {archive_facts.DOWNLOAD_PAGE} (a partial or'
    ' damaged copy gives a wrong dataset); if you re-packed it on purpose, turn'
    ' the check off: `imagenet2012-local build-classic ... --no_verify`, or'
    f' {settings.VERIFY_ENV_VAR}=0 tfds build ... (in Python:'
    " tfds.builder('imagenet2012_local', verify_checksums=False))."
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
    self.path = paths.absolute(path)
    self._identity = storage.file_identity(self.path)
    self.size = self._identity['bytes']
    self.algorithm = 'md5'  # Which digest `update` computes: see `_verify`.
    self._hash = hashlib.md5()
    # Known copies this archive may be; empty when there is nothing to hash.
    self._candidates: list[checksum_tables.ArchiveDigest] = []
    self._verified_md5: str | None = None
    if not enabled:
      self.status = 'not verified: the check is turned off'
      return
    known = checksum_tables.known_archives().get(self.path.name)
    if not known:
      self.status = 'not verified: no known checksum for this file name'
      _log.warning('%s: no known checksum, not verified.', self.path)
      return
    candidates = [k for k in known if k.size in (None, self.size)]
    if not candidates:
      raise ChecksumError(errors.two_lines(
          f'{self.path} is {self.size:,} bytes; the known copies are'
          f' {_sizes(known)}',
          _HOW_TO_FIX,
      ))
    remembered = _load_cache().get(str(self.path))
    if any(remembered == self._cache_entry(k.md5) for k in candidates):
      # The same file, unchanged since its digest passed: see `file_identity`.
      self.status = 'verified'
      self._verified_md5 = remembered['md5']
      _log.info(
          '%s: verified by an earlier build and unchanged since; not hashed'
          ' again.', self.path
      )
    else:
      self._verify(candidates)

  def _verify(self, candidates: list[checksum_tables.ArchiveDigest]) -> None:
    """Gets ready to hash with the fastest digest all `candidates` know."""
    self.status = 'verifying'
    self._candidates = candidates
    self.algorithm = next(
        a
        for a in checksum_tables.digests_fastest_first()
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
      raise ChecksumError(errors.two_lines(
          f'{self.path} has {checksum_tables.DIGEST_NAMES[self.algorithm]} {actual}; expected'
          f' {expected}. Nothing was published',
          _HOW_TO_FIX,
      ))
    self.status = 'verified'
    self._candidates = []
    # A known copy's digests belong together: its MD5 is the one recorded.
    self._verified_md5 = match.md5
    _remember(str(self.path), self._cache_entry(match.md5))

  def summary(self) -> dict[str, object]:
    """Size, verified MD5 (None when not verified) and status, for metadata."""
    return {'bytes': self.size, 'md5': self._verified_md5, 'status': self.status}

  def _cache_entry(self, md5: str) -> dict[str, object]:
    return {'file': self._identity, 'md5': md5}


def _sizes(known: list[checksum_tables.ArchiveDigest]) -> str:
  """The known sizes, each with the table it came from (the bundled dummy
  data's table knows the same names), largest first: the official copy."""
  sized = sorted((k for k in known if k.size is not None), key=lambda k: -k.size)
  return ' or '.join(f'{k.size:,} bytes ({k.table})' for k in sized)


class BackgroundHasher:
  """Hashes archives on a thread while shards are being written.

  File reads and hashlib release the GIL, so the digest is computed on a
  second core from its own sequential read, read ahead on other threads
  (`direct_reads`). Use as a context manager; call
  `raise_if_failed` now and then to stop early, and `wait` at the end.
  """

  def __init__(self, checks: Iterable[ArchiveCheck]):
    self._checks = [c for c in checks if c.needs_hashing]
    self._error: BaseException | None = None
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, name='checksums', daemon=True)

  def __enter__(self) -> BackgroundHasher:
    self._thread.start()
    return self

  def __exit__(self, *exc_info) -> None:
    self._stop.set()
    self._thread.join()

  def _run(self) -> None:
    try:
      self._hash_all()
    except BaseException as e:  # pylint: disable=broad-except
      # A mismatch or a read error: either must fail the build, not the thread.
      self._error = e

  def _hash_all(self) -> None:
    total = sum(check.size for check in self._checks)
    with tfds_internals.progress_bar(
        total=total, desc='Verifying checksums', unit='B', unit_scale=True
    ) as bar:
      for check in self._checks:
        for chunk in direct_reads.pieces(check.path):
          if self._stop.is_set():
            return
          check.update(chunk)
          bar.update(len(chunk))
        check.finish()

  def raise_if_failed(self) -> None:
    """Raises the digest mismatch (or read error) found so far, if any."""
    if self._error:
      raise self._error

  def wait(self) -> None:
    """Waits for every archive to be hashed; raises on a mismatch."""
    self._thread.join()
    self.raise_if_failed()


def _cache_file() -> Path:
  """The remembered archives: JSON, {absolute path: {"file":
  `storage.file_identity`, "md5": the verified copy's MD5}}."""
  return Path(settings.cache_dir()) / 'verified_archives.json'


def _is_cache(value: object) -> bool:
  """Whether `value` has the shape `_remember` writes."""
  return isinstance(value, dict) and all(
      isinstance(path, str)
      and isinstance(entry, dict)
      and entry.keys() == {'file', 'md5'}
      and isinstance(entry['file'], dict)
      and isinstance(entry['md5'], str)
      for path, entry in value.items()
  )


def _load_cache() -> Mapping[str, dict[str, object]]:
  """The remembered archives; none where the file is missing or damaged."""
  return state_files.load_json(_cache_file(), _is_cache) or {}


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
