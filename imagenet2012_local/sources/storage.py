"""Where an input lies: a local file system or object storage (`s3://`, `gs://`).

Every read of the manual dir goes through here, so that one module decides
local versus remote and the tuning of each:

- Local files are read with the kernel's help: `posix_fadvise(WILLNEED)`
  starts reads ahead and returns, then each piece is read with one `pread`
  on this thread (threads would wait for the GIL after every read).
- Object storage answers each request after a round trip of 1-50 ms, so a
  read of one ~110 KB image at a time would hold a worker to a few MB/s:
  requests are sent many at a time (`fsspec`'s `cat_ranges` and `cat`, on
  its event loop), `REMOTE_READS_IN_FLIGHT` by default. Each request is
  retried on the store's transient errors (HTTP 5xx, throttling) by the
  client's standard retry mode.

Remote file systems come from `fsspec`: `s3fs` for `s3://` (endpoint from
`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, credentials as the AWS CLI
finds them), `gcsfs` for `gs://` (`STORAGE_EMULATOR_HOST` for an emulator).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO, TypeVar

from imagenet2012_local import errors

LOCAL_READS_IN_FLIGHT = 16
# 64 requests of ~110 KB at ~20 ms each keep ~350 MB/s in flight.
REMOTE_READS_IN_FLIGHT = 64
# Sequential reads of a remote file (digests, tar headers): large blocks, few
# round trips.
_REMOTE_BLOCK = 8 << 20
_RETRIES = 10
T = TypeVar('T')
_INSTALL = {'s3': 's3fs', 'gs': 'gcsfs', 'gcs': 'gcsfs'}


class InputUnreachableError(errors.Imagenet2012LocalError, OSError):
  """Object storage refused or could not find what the build asked for."""


def is_remote(path: os.PathLike[str] | str) -> bool:
  """Whether `path` is in object storage (`s3://...`, `gs://...`)."""
  return '://' in os.fspath(path)


def is_local(path: os.PathLike[str] | str) -> bool:
  """Whether `path` is on a local file system."""
  return not is_remote(path)


def join(root: os.PathLike[str] | str, *parts: str) -> str:
  """`root/part/...`, with '/' in remote paths."""
  root = os.fspath(root)
  if is_remote(root):
    return '/'.join([root.rstrip('/'), *parts])
  return os.path.join(root, *parts)


def name_of(path: os.PathLike[str] | str) -> str:
  """The last component of `path`."""
  return os.fspath(path).rstrip('/').rsplit('/', 1)[-1]


@functools.cache
def _filesystem(protocol: str):
  """The fsspec file system of a protocol, made once per process."""
  import fsspec  # pylint: disable=g-import-not-at-top

  options = {}
  if protocol == 's3':
    endpoint = os.environ.get('AWS_ENDPOINT_URL_S3') or os.environ.get('AWS_ENDPOINT_URL')
    options = {
        'client_kwargs': {'endpoint_url': endpoint} if endpoint else {},
        'config_kwargs': {'retries': {'max_attempts': _RETRIES, 'mode': 'standard'}},
    }
  try:
    return fsspec.filesystem(protocol, **options)
  except ImportError as e:
    package = _INSTALL.get(protocol, f'an fsspec implementation of {protocol}://')
    raise InputUnreachableError(errors.two_lines(
        f'Reading {protocol}:// needs the Python package {package}, which is'
        ' not installed',
        f'pip install {package} (or imagenet2012_local[{protocol}]), then rerun.',
    )) from e


def _fs(path: str):
  return _filesystem(path.split('://', 1)[0])


@contextlib.contextmanager
def reported(path: os.PathLike[str] | str) -> Iterator[None]:
  """Turns a store's refusal (missing bucket or object, denied access) into
  two lines naming `path`."""
  try:
    yield
  except InputUnreachableError:
    raise
  except OSError as e:
    if not is_remote(path):
      raise
    what = {
        FileNotFoundError: 'does not exist (no such bucket or object)',
        PermissionError: 'cannot be read: access denied',
    }.get(type(e), f'cannot be read ({type(e).__name__}: {e})')
    raise InputUnreachableError(errors.two_lines(
        f'{os.fspath(path)} {what}',
        'Check the URL and that these credentials may list and read it (for'
        ' another endpoint: AWS_ENDPOINT_URL for s3://, STORAGE_EMULATOR_HOST'
        ' for gs://), then rerun.',
    )) from e


def open_read(path: os.PathLike[str] | str) -> BinaryIO:
  """`path` opened for reading: seeks are cheap locally, a block fetch remotely."""
  path = os.fspath(path)
  if not is_remote(path):
    return open(path, 'rb')
  with reported(path):
    return _fs(path).open(path, 'rb', block_size=_REMOTE_BLOCK, cache_type='readahead')


def _asked(path: os.PathLike[str] | str, local: Callable[[str], T], remote: str) -> T:
  """`local(path)` on a local path; else the file system's method `remote`,
  a refusal reported in two lines."""
  path = os.fspath(path)
  if not is_remote(path):
    return local(path)
  with reported(path):
    return getattr(_fs(path), remote)(path)


def size(path: os.PathLike[str] | str) -> int:
  return int(_asked(path, os.path.getsize, 'size'))


def is_file(path: os.PathLike[str] | str) -> bool:
  return _asked(path, os.path.isfile, 'isfile')


def is_dir(path: os.PathLike[str] | str) -> bool:
  return _asked(path, os.path.isdir, 'isdir')


def exists(path: os.PathLike[str] | str) -> bool:
  return _asked(path, os.path.exists, 'exists')


def read_bytes(path: os.PathLike[str] | str) -> bytes:
  with open_read(path) as f, reported(path):
    return f.read()


def list_dir(path: os.PathLike[str] | str) -> list[tuple[str, bool]]:
  """(name, is a folder) of each entry of the folder `path`, sorted."""
  path = os.fspath(path)
  if not is_remote(path):
    with os.scandir(path) as entries:
      return sorted((e.name, e.is_dir()) for e in entries)
  with reported(path):
    listed = _fs(path).ls(path, detail=True)
  return sorted(
      (name_of(entry['name']), entry['type'] == 'directory') for entry in listed
  )


# (path relative to the listed folder, size, its `file_identity`).
Listed = tuple[str, int, dict[str, int | str]]


def list_tree(path: os.PathLike[str] | str) -> list[Listed]:
  """Every file under the folder `path`, at any depth, sorted by path."""
  path = os.fspath(path)
  if is_remote(path):
    with reported(path):
      found = _fs(path).find(path, detail=True)
    prefix = _without_protocol(path).rstrip('/') + '/'
    return sorted(
        (
            (name.removeprefix(prefix), int(info['size']), _object_identity(info))
            for name, info in found.items()
            if info.get('type') != 'directory'
        ),
        key=lambda entry: entry[0],
    )
  listed = []
  for folder, _, files in os.walk(path):
    relative = os.path.relpath(folder, path)
    for name in files:
      stat = os.stat(os.path.join(folder, name))
      listed.append((
          name if relative == '.' else f'{relative}/{name}',
          stat.st_size,
          _stat_identity(stat),
      ))
  listed.sort(key=lambda entry: entry[0])
  return listed


def file_identity(path: os.PathLike[str] | str) -> dict[str, int | float | str]:
  """What says a file still holds the bytes a remembered check saw: a JSON-ready
  dict, compared whole (the verified archives, the index cache, kept shards).

  Local files: device and inode (the same file, not another one renamed or
  copied into its place), size, and modification and inode-change times in
  nanoseconds. The change time is what cannot be faked: any write, and any
  `touch -r`, `os.utime`, `cp -p` or rsync that sets the modification time
  back, sets it to now, and no user can set it back (short of setting the
  system clock). Objects in a store are never changed in place: a rewrite is
  a new object with a new ETag, so size and ETag say it.
  """
  path = os.fspath(path)
  if not is_remote(path):
    return _stat_identity(os.stat(path))
  with reported(path):
    return _object_identity(_fs(path).info(path))


def _stat_identity(stat: os.stat_result) -> dict[str, int]:
  return {
      'device': stat.st_dev,
      'inode': stat.st_ino,
      'bytes': stat.st_size,
      'mtime_ns': stat.st_mtime_ns,
      'ctime_ns': stat.st_ctime_ns,
  }


def _object_identity(info: dict[str, object]) -> dict[str, int | str]:
  """An object's size and version (its ETag, or its time where a store has none)."""
  return {
      'bytes': int(info['size']),
      'etag': str(info.get('ETag') or info.get('LastModified') or ''),
  }


def read_ranges(
    path: str, ranges: Iterable[tuple[int, int]], in_flight: int
) -> Iterator[bytes]:
  """The bytes of each (offset, size) of the remote file `path`, in order,
  `in_flight` requests at a time."""
  fs = _fs(path)
  for batch in _batches(ranges, in_flight):
    with reported(path):
      yield from fs.cat_ranges(
          [path] * len(batch),
          [offset for offset, _ in batch],
          [offset + size for offset, size in batch],
      )


def read_files(paths: Sequence[str], in_flight: int) -> Iterator[bytes]:
  """The whole bytes of each remote file, in order, `in_flight` at a time."""
  if not paths:
    return
  fs = _fs(paths[0])
  for batch in _batches(paths, in_flight):
    with reported(batch[0]):
      found = fs.cat(batch, on_error='raise')
    # fsspec keys the answers by path with or without the protocol.
    yield from (found[p] if p in found else found[_without_protocol(p)] for p in batch)


def _without_protocol(path: str) -> str:
  return path.split('://', 1)[1]


def _batches(items: Iterable, size: int) -> Iterator[list]:
  batch = []
  for item in items:
    batch.append(item)
    if len(batch) == size:
      yield batch
      batch = []
  if batch:
    yield batch


def reads_in_flight(path: os.PathLike[str] | str, requested: int | None) -> int:
  """Reads to keep in flight on `path`: `requested` (the setting) if given,
  else what suits where it lies."""
  if requested:
    return requested
  return REMOTE_READS_IN_FLIGHT if is_remote(path) else LOCAL_READS_IN_FLIGHT
