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
| IMAGENET2012_LOCAL_SYNC_EVERY_MB | - | 1024 (at most 8192) | finished shards are flushed to disk and recorded for a resume each time this many MB of them wait (builds without Beam; 0: each shard) |
| IMAGENET2012_LOCAL_READS_IN_FLIGHT | - | 16 local, 64 cloud (at most 256) | image reads kept in flight (per process) |
| IMAGENET2012_LOCAL_WORKERS | - | the CPUs this process may use, at most 8; never more than those CPUs | processes that index and write shards in a build without Beam (1: all in the build's own process) |
| IMAGENET2012_LOCAL_READ_ORDER | - | auto | how a build reads an archive: `by-offset` (a header, then an image, read at its offset per image), `in-order` (the index read in order, shared with the digest, then the images read in order, each record written at its planned offset), or `auto` (the disk measured; `disk_probe`) |

A number above its bound is lowered to it; `lowered()` says so.
"""

from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple

from etils import epath

from imagenet2012_local import errors

VERIFY_ENV_VAR = 'IMAGENET2012_LOCAL_VERIFY'
SKIP_BAD_IMAGES_ENV_VAR = 'IMAGENET2012_LOCAL_SKIP_BAD_IMAGES'
EXTRA_TABLES_ENV_VAR = 'IMAGENET2012_LOCAL_CHECKSUMS'
CACHE_DIR_ENV_VAR = 'IMAGENET2012_LOCAL_CACHE_DIR'
READS_IN_FLIGHT_ENV_VAR = 'IMAGENET2012_LOCAL_READS_IN_FLIGHT'
RESUME_ENV_VAR = 'IMAGENET2012_LOCAL_RESUME'
SYNC_EVERY_MB_ENV_VAR = 'IMAGENET2012_LOCAL_SYNC_EVERY_MB'
WORKERS_ENV_VAR = 'IMAGENET2012_LOCAL_WORKERS'
READ_ORDER_ENV_VAR = 'IMAGENET2012_LOCAL_READ_ORDER'
_READ_ORDERS = ('auto', 'by-offset', 'in-order')

# Past the device's request queue (nr_requests, 64-256 on Linux) local reads
# only wait in the kernel; in object storage each is a request and its
# buffer. 256 ImageNet-sized reads are ~28 MB
# (`image_reads` caps the bytes in flight at 64 MiB besides).
_MAX_READS_IN_FLIGHT = 256
# Flushing shards to disk one by one costs a wait each (the classic layout
# has 1,152 shards); one `sync` per GB costs one wait a GB. A kill loses up to about twice this much finished work: past
# 8 GiB (16 GB at risk, a ninth of full ImageNet's ~145 GB of shards), rarer
# flushes save nothing worth that.
_SYNC_EVERY_MB = 1024
_MAX_SYNC_EVERY_MB = 8 << 10
# One build process keeps one core busy with Python and system calls while
# the disk could take more. Past ~8, one disk is the limit and each worker
# only adds its own memory (a Python process with the encoder loaded). Asked for, more workers than usable
# CPUs only take turns on them.
_MAX_DEFAULT_WORKERS = 8


class SettingError(errors.Imagenet2012LocalError, ValueError):
  """An environment variable has a value this package cannot use."""


class _Number(NamedTuple):
  """A whole-number environment variable and its bounds."""

  env_var: str
  minimum: int  # Less is an error.
  maximum: int  # More is lowered to this.
  why: str  # Why more than `maximum` is not used, for `lowered`.


_READS_IN_FLIGHT = _Number(
    READS_IN_FLIGHT_ENV_VAR, 1, _MAX_READS_IN_FLIGHT,
    'more reads in flight only queue in the kernel (local disks) or each hold'
    ' a request and its buffer (object storage)',
)
_SYNC_EVERY = _Number(
    SYNC_EVERY_MB_ENV_VAR, 0, _MAX_SYNC_EVERY_MB,
    'a killed build loses up to about twice this many MB of finished shards',
)


def _workers_number() -> _Number:
  cpus = usable_cpus()
  return _Number(
      WORKERS_ENV_VAR, 1, cpus,
      f'more worker processes than the CPUs this process may use ({cpus})'
      ' only take turns on them',
  )


@dataclasses.dataclass(frozen=True)
class BuildSettings:
  """What a build is asked to do, read once at its front door (the TFDS
  builder, a command) and passed down with the work: a Beam worker on another
  machine does not see the launcher's environment."""

  verify_checksums: bool
  skip_bad_images: bool
  resume: bool
  workers: int
  reads_in_flight: int | None  # None: what suits where the input lies.
  read_order: str


def read(
    verify_checksums: bool | None = None,
    skip_bad_images: bool | None = None,
    resume: bool | None = None,
) -> BuildSettings:
  """The settings: builder arguments (None: unset) over environment variables.

  Raises:
    SettingError: a variable is set to something this package cannot use.
  """
  return BuildSettings(
      verify_checksums=flag(verify_checksums, VERIFY_ENV_VAR, default=True),
      skip_bad_images=flag(skip_bad_images, SKIP_BAD_IMAGES_ENV_VAR, default=False),
      resume=flag(resume, RESUME_ENV_VAR, default=True),
      workers=workers(),
      reads_in_flight=reads_in_flight(),
      read_order=read_order(),
  )


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


def reads_in_flight() -> int | None:
  """How many image reads to keep in flight, if set; None: what suits where
  the input lies (`storage.reads_in_flight`).

  Raises:
    SettingError: the variable is not a positive whole number.
  """
  requested = _requested(_READS_IN_FLIGHT)
  return None if requested is None else min(requested, _READS_IN_FLIGHT.maximum)


def sync_every_bytes() -> int:
  """How many bytes of finished shards wait for one flush to disk (0: each
  shard is flushed as it is finished).

  Raises:
    SettingError: the variable is not a whole number.
  """
  return _whole_number(_SYNC_EVERY, _SYNC_EVERY_MB) << 20


def workers() -> int:
  """How many worker processes index and write shards (1: none; the build's
  own process does it).

  Raises:
    SettingError: the variable is not a positive whole number.
  """
  number = _workers_number()
  return _whole_number(number, min(number.maximum, _MAX_DEFAULT_WORKERS))


def usable_cpus() -> int:
  """The CPUs this process may run on (its affinity, where the OS has one)."""
  if hasattr(os, 'sched_getaffinity'):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def lowered() -> list[str]:
  """One line for each number set above its bound: what was asked, what is
  used, and why.

  Raises:
    SettingError: a number is set to something that is not one.
  """
  return [
      f'{number.env_var}={os.environ[number.env_var].strip()} lowered to'
      f' {number.maximum}: {number.why}.'
      for number in (_workers_number(), _READS_IN_FLIGHT, _SYNC_EVERY)
      if (requested := _requested(number)) is not None
      and requested > number.maximum
  ]


def _whole_number(number: _Number, default: int) -> int:
  """$`number.env_var` lowered to its maximum, or `default` if unset."""
  requested = _requested(number)
  return default if requested is None else min(requested, number.maximum)


def _requested(number: _Number) -> int | None:
  """The value of $`number.env_var`, None if unset; a number with more
  digits than the maximum reads as one past it."""
  value = os.environ.get(number.env_var, '').strip()
  if not value:
    return None
  digits = value.lstrip('0') or '0'
  if value.isascii() and value.isdigit():
    if len(digits) > len(str(number.maximum)):  # `int` refuses 4,300 digits.
      return number.maximum + 1
    if int(digits) >= number.minimum:
      return int(digits)
  raise SettingError(errors.two_lines(
      f'{number.env_var}={value!r} is not a whole number of at least'
      f' {number.minimum}',
      f'Set {number.env_var} to a number from {number.minimum} to'
      f' {number.maximum}, or unset it for the default.',
  ))


def read_order() -> str:
  """How a build reads an archive: 'auto', 'by-offset' or 'in-order'.

  Raises:
    SettingError: the variable is set to another value.
  """
  value = os.environ.get(READ_ORDER_ENV_VAR, '').strip().lower() or 'auto'
  if value not in _READ_ORDERS:
    raise SettingError(errors.two_lines(
        f'{READ_ORDER_ENV_VAR}={value!r} is not one of {", ".join(_READ_ORDERS)}',
        f'Set {READ_ORDER_ENV_VAR} to one of them, or unset it for auto.',
    ))
  return value
