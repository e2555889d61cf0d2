"""Path helpers: local or cloud, and the form that keys caches and messages."""

from __future__ import annotations

import os

from etils import epath


def is_local(path: epath.PathLike) -> bool:
  """Whether `path` is on a local file system (not gs://, s3://, ...)."""
  return '://' not in os.fspath(path)


def absolute(path: epath.PathLike) -> epath.Path:
  """Local paths made absolute (they key caches); gs:// and such as given."""
  path = epath.Path(path)
  return path.expanduser().resolve() if is_local(path) else path
