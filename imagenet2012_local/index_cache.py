"""Archive indexes remembered between builds of the same archives.

Indexing reads one 512-byte header per image at a random offset: a disk that
serves ~18,000 such reads a second (this project's test machine) needs ~70 s
for train's 1.28 M headers, on every build. A rebuild or a resumed build of
the same archive file reads the index back instead (~50 MB, under a second).

On disk, in the cache dir (`settings.cache_dir()`), one file per archive:
`index-<first 16 hex digits of the SHA-256 of its key>.npz`, a numpy `.npz`
(written to a temporary name, then renamed) holding the `ArchiveIndex`
columns `names`, `offsets`, `sizes`, `class_ids`, `class_dirs`, plus `key`
(the JSON of the archive's absolute path, size and mtime, and this format's
version) and `skipped` (the JSON of {member: why} of members that are not
images). An entry whose key differs from the archive's is ignored, so a
changed file (new size or mtime) is indexed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile

from etils import epath
import numpy as np

from imagenet2012_local import archive_index
from imagenet2012_local import paths
from imagenet2012_local import settings

_FORMAT_VERSION = 1
_log = logging.getLogger(__name__)


def _key(archive: epath.Path) -> str:
  size, mtime = paths.size_and_mtime(archive)
  return json.dumps(
      {'archive': os.fspath(archive), 'bytes': size, 'mtime': mtime,
       'format': _FORMAT_VERSION},
      sort_keys=True,
  )


def _file(key: str) -> epath.Path:
  name = hashlib.sha256(key.encode()).hexdigest()[:16]
  return settings.cache_dir() / f'index-{name}.npz'


def load(
    archive: epath.Path,
) -> tuple[archive_index.ArchiveIndex, dict[str, str]] | None:
  """The remembered index of `archive` and its skipped members, if the file
  is unchanged since it was indexed; else None."""
  key = _key(archive)
  try:
    # An open file, not a path: TFDS's test utilities replace np.load by one
    # that refuses paths.
    with _file(key).open('rb') as f, np.load(f) as saved:
      if str(saved['key']) != key:
        return None
      index = archive_index.ArchiveIndex(
          names=saved['names'],
          offsets=saved['offsets'],
          sizes=saved['sizes'],
          class_ids=saved['class_ids'],
          class_dirs=tuple(str(d) for d in saved['class_dirs']),
      )
      return index, json.loads(str(saved['skipped']))
  except (OSError, ValueError, KeyError):
    return None


def save(
    archive: epath.Path,
    index: archive_index.ArchiveIndex,
    skipped: dict[str, str],
) -> None:
  """Remembers the index of `archive`; a failure only logs (it is a cache)."""
  key = _key(archive)
  target = _file(key)
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
      )
    os.replace(tmp.name, target)
  except OSError as e:
    _log.warning('Could not remember the index of %s: %s', archive, e)
