"""Every setting of a build: environment variables and builder arguments.

A builder argument, where there is one, wins over its environment variable;
an unset variable means the default documented here.

| variable | builder argument | default | what it does |
|---|---|---|---|
| IMAGENET2012_LOCAL_VERIFY | verify_checksums | on | the checksum gate: archive sizes and digests against `checksums/` |
| IMAGENET2012_LOCAL_SKIP_BAD_IMAGES | skip_bad_images | off | leave out (and list) images no decoder reads, instead of failing |
| IMAGENET2012_LOCAL_CHECKSUMS | - | none | extra checksum tables, separated by os.pathsep |
| IMAGENET2012_LOCAL_CACHE_DIR | - | ~/.cache/imagenet2012_local | where verified archives and archive indexes are remembered |
| IMAGENET2012_LOCAL_RESUME | resume | on | reuse the shards an interrupted build finished; off starts afresh |
| IMAGENET2012_LOCAL_SYNC_EVERY_MB | - | 1024 | finished shards are flushed to disk and recorded for a resume each time this many MB of them wait (builds without Beam; 0: each shard) |
| IMAGENET2012_LOCAL_READS_IN_FLIGHT | - | 16 local, 64 cloud | image reads kept in flight (per process) |
| IMAGENET2012_LOCAL_WORKERS | - | the CPUs this process may use, at most 8 | processes that index and write shards in a build without Beam (1: all in the build's own process) |
| IMAGENET2012_LOCAL_INDEX_ORDER | - | auto | how a first build indexes an archive: `by-offset` (a header read per image), `in-order` (one sequential read, shared with the digest), or `auto` (measure the disk; `disk_probe`) |
"""

from __future__ import annotations

import os

from etils import epath

from imagenet2012_local import errors
from imagenet2012_local import paths

VERIFY_ENV_VAR = 'IMAGENET2012_LOCAL_VERIFY'
SKIP_BAD_IMAGES_ENV_VAR = 'IMAGENET2012_LOCAL_SKIP_BAD_IMAGES'
EXTRA_TABLES_ENV_VAR = 'IMAGENET2012_LOCAL_CHECKSUMS'
CACHE_DIR_ENV_VAR = 'IMAGENET2012_LOCAL_CACHE_DIR'
READS_IN_FLIGHT_ENV_VAR = 'IMAGENET2012_LOCAL_READS_IN_FLIGHT'
RESUME_ENV_VAR = 'IMAGENET2012_LOCAL_RESUME'
SYNC_EVERY_MB_ENV_VAR = 'IMAGENET2012_LOCAL_SYNC_EVERY_MB'
WORKERS_ENV_VAR = 'IMAGENET2012_LOCAL_WORKERS'
INDEX_ORDER_ENV_VAR = 'IMAGENET2012_LOCAL_INDEX_ORDER'
_INDEX_ORDERS = ('auto', 'by-offset', 'in-order')

# Measured on a local SSD-backed disk: 110 KB random reads gave 405 MB/s with
# 1 request in flight, 700 with 4, 854 with 16 (sequential 790-880). Cloud
# storage answers in 1-50 ms, so it needs more requests to fill a worker.
_READS_IN_FLIGHT_LOCAL = 16
_READS_IN_FLIGHT_CLOUD = 64
# Flushing shards to disk one by one costs a wait each: the classic layout's
# 1,152 shards of a cold 8 GB build took ~2 s longer (of ~28 s) than one
# `sync` per GB. A kill loses at most this much finished, unrecorded work.
_SYNC_EVERY_MB = 1024
# One build process keeps one core busy with Python and system calls while
# the disk could take more (cold 8 GB build, 2 cores: 19.4 s of writing in
# one process, 13.5 s with two workers). Past ~8, one disk is the limit and
# each worker only adds ~50 MB of memory.
_MAX_DEFAULT_WORKERS = 8


class SettingError(errors.Imagenet2012LocalError, ValueError):
  """An environment variable has a value this package cannot use."""


def flag(argument: bool | None, env_var: str, default: bool) -> bool:
  """A yes/no setting: the builder argument wins, then $`env_var`, then `default`.

  Raises:
    SettingError: the variable is set to something that is neither on nor off.
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
  raise SettingError(errors.two_lines(
      f'{env_var}={value!r} is neither on nor off',
      f'Set {env_var} to 1 (on) or 0 (off), or unset it for the default.',
  ))


def verify_checksums(argument: bool | None = None) -> bool:
  """Whether the checksum gate is on (default on)."""
  return flag(argument, VERIFY_ENV_VAR, default=True)


def skip_bad_images(argument: bool | None = None) -> bool:
  """Whether undecodable images are left out instead of failing (default off)."""
  return flag(argument, SKIP_BAD_IMAGES_ENV_VAR, default=False)


def resume(argument: bool | None = None) -> bool:
  """Whether an interrupted build's finished shards are reused (default on)."""
  return flag(argument, RESUME_ENV_VAR, default=True)


def extra_checksum_tables() -> list[epath.Path]:
  """The checksum tables named in $IMAGENET2012_LOCAL_CHECKSUMS."""
  extra = os.environ.get(EXTRA_TABLES_ENV_VAR, '')
  return [epath.Path(p) for p in extra.split(os.pathsep) if p]


def cache_dir() -> epath.Path:
  """Where verified archives and archive indexes are remembered."""
  root = os.environ.get(CACHE_DIR_ENV_VAR) or os.path.join(
      os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'),
      'imagenet2012_local',
  )
  return epath.Path(root)


def reads_in_flight(archive: epath.PathLike) -> int:
  """How many image reads to keep in flight on `archive`.

  Raises:
    SettingError: the variable is not a positive whole number.
  """
  local = paths.is_local(archive)
  default = _READS_IN_FLIGHT_LOCAL if local else _READS_IN_FLIGHT_CLOUD
  return _whole_number(READS_IN_FLIGHT_ENV_VAR, default, minimum=1)


def sync_every_bytes() -> int:
  """How many bytes of finished shards wait for one flush to disk (0: each
  shard is flushed as it is finished).

  Raises:
    SettingError: the variable is not a whole number.
  """
  return _whole_number(SYNC_EVERY_MB_ENV_VAR, _SYNC_EVERY_MB, minimum=0) << 20


def workers() -> int:
  """How many worker processes index and write shards (1: none; the build's
  own process does it).

  Raises:
    SettingError: the variable is not a positive whole number.
  """
  usable = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
  return _whole_number(
      WORKERS_ENV_VAR, min(usable or 1, _MAX_DEFAULT_WORKERS), minimum=1
  )


def _whole_number(env_var: str, default: int, minimum: int) -> int:
  value = os.environ.get(env_var, '').strip()
  if not value:
    return default
  if not value.isdigit() or int(value) < minimum:
    raise SettingError(errors.two_lines(
        f'{env_var}={value!r} is not a whole number of at least {minimum}',
        f'Set {env_var} to a number such as {default}, or unset it for the'
        ' default.',
    ))
  return int(value)


def index_order() -> str:
  """How a first build indexes an archive: 'auto', 'by-offset' or 'in-order'.

  Raises:
    SettingError: the variable is set to another value.
  """
  value = os.environ.get(INDEX_ORDER_ENV_VAR, '').strip().lower() or 'auto'
  if value not in _INDEX_ORDERS:
    raise SettingError(errors.two_lines(
        f'{INDEX_ORDER_ENV_VAR}={value!r} is not one of {", ".join(_INDEX_ORDERS)}',
        f'Set {INDEX_ORDER_ENV_VAR} to one of them, or unset it for auto.',
    ))
  return value
