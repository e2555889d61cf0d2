"""Archive indexes remembered between builds of the same archives.

Indexing reads one 512-byte header per image at a random offset: even a disk
that serves ~18,000 such reads a second needs ~70 s for train's 1.28 M
headers, on every build, and a standard cloud disk (~375 a second) an hour.
A rebuild or a resumed build of the same archive file reads the index back
instead (~50 MB, under a second).

On disk, in the cache dir (`settings.cache_dir()`), one file per archive path:
`index-<first 16 hex digits of the SHA-256 of the path>.npz`, a numpy `.npz`
(written to a temporary name, then renamed) holding the `ArchiveIndex`
columns `names`, `offsets`, `sizes`, `class_ids`, `class_dirs` (and, for an
archive indexed in order, `stored_sizes`, `heights`, `widths`), plus `key`
(the JSON of the archive's absolute path, `storage.file_identity` and this
format's version) and `skipped` (the JSON of {member: why} of members that are
not images). An entry whose key differs from the archive's is not used: any
change to the file's bytes, even with its modification time set back, changes
its identity, so the archive is indexed again and its entry replaced. An entry
that does not load, or whose columns do not fit together and within the
archive, is ignored with a warning (`state_files`) and written again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile

from etils import epath
import numpy as np

from imagenet2012_local.sources import archive_index
from imagenet2012_local import settings
from imagenet2012_local.engine import state_files
from imagenet2012_local.sources import storage

_FORMAT_VERSION = 2
_log = logging.getLogger(__name__)


def _key(archive: epath.Path, identity: dict[str, int | float]) -> str:
  return json.dumps(
      {'archive': os.fspath(archive), 'file': identity,
       'format': _FORMAT_VERSION},
      sort_keys=True,
  )


def _file(archive: epath.Path) -> epath.Path:
  """One file per archive path: a changed archive's entry replaces its last."""
  name = hashlib.sha256(os.fspath(archive).encode()).hexdigest()[:16]
  return settings.cache_dir() / f'index-{name}.npz'


def load(
    archive: epath.Path,
) -> tuple[archive_index.ArchiveIndex, dict[str, str]] | None:
  """The remembered index of `archive` and its skipped members, if the file
  is unchanged since it was indexed; else None."""
  identity = storage.file_identity(archive)
  key = _key(archive, identity)
  path = _file(archive)
  try:
    # An open file, not a path: TFDS's test utilities replace np.load by one
    # that refuses paths.
    with path.open('rb') as f, np.load(f) as saved:
      if str(saved['key']) != key:
        return None  # Another version of the file: indexed again.
      index = archive_index.ArchiveIndex(
          names=saved['names'],
          offsets=saved['offsets'],
          sizes=saved['sizes'],
          class_ids=saved['class_ids'],
          class_dirs=tuple(str(d) for d in saved['class_dirs']),
          **{
              column: saved[column]
              for column in archive_index.CONTENT_COLUMNS
              if column in saved
          },
      )
      skipped = json.loads(str(saved['skipped']))
  except FileNotFoundError:
    return None
  except Exception as e:  # pylint: disable=broad-except
    # Whatever the damage (cut off: BadZipFile, EOFError; garbled: a zip
    # member's CRC, numpy's header, JSON...), the same.
    state_files.discard(path, state_files.describe(e))
    return None
  if not _fits(index, skipped, identity['bytes']):
    state_files.discard(path, 'its columns do not fit together or the archive')
    return None
  return index, skipped


def _fits(
    index: archive_index.ArchiveIndex, skipped: object, archive_bytes: int
) -> bool:
  """Whether a loaded index has the shape `save` writes, every image within
  the archive's bytes and every class number a row of its class list."""
  content = [getattr(index, c) for c in archive_index.CONTENT_COLUMNS]
  if any(column is None for column in content):
    content = []  # Indexed by offset: no content columns.
  columns = (index.names, index.offsets, index.sizes, index.class_ids, *content)
  return (
      all(column.ndim == 1 and len(column) == len(index) for column in columns)
      and index.names.dtype.kind == 'S'
      and all(c.dtype.kind == 'i' for c in columns[1:])
      # Compared without a sum, which garbage as large as 2**63 would overflow.
      and bool(np.all((0 <= index.offsets) & (index.offsets <= archive_bytes)))
      and bool(np.all((0 <= index.sizes) & (index.sizes <= archive_bytes - index.offsets)))
      and bool(np.all((-1 <= index.class_ids) & (index.class_ids < len(index.class_dirs))))
      and isinstance(skipped, dict)
      and all(isinstance(k, str) and isinstance(v, str) for k, v in skipped.items())
  )


def save(
    archive: epath.Path,
    index: archive_index.ArchiveIndex,
    skipped: dict[str, str],
) -> None:
  """Remembers the index of `archive`; a failure only logs (it is a cache)."""
  key = _key(archive, storage.file_identity(archive))
  target = _file(archive)
  try:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        dir=target.parent, suffix='.npz.tmp', delete=False
    ) as tmp:
      np.savez(
          tmp,
          key=np.array(key),
          names=index.names,
          offsets=index.offsets,
          sizes=index.sizes,
          class_ids=index.class_ids,
          class_dirs=np.array(index.class_dirs, dtype=str),
          skipped=np.array(json.dumps(skipped, sort_keys=True)),
          **{
              column: getattr(index, column)
              for column in archive_index.CONTENT_COLUMNS
              if getattr(index, column) is not None
          },
      )
    os.replace(tmp.name, target)
  except OSError as e:
    _log.warning('Could not remember the index of %s: %s', archive, e)
