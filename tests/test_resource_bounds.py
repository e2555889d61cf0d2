"""Settings that multiply processes, threads or memory are bounded: a request
above its bound is lowered, in one line that says so, and builds the same bytes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from imagenet2012_local import settings
from imagenet2012_local.sources import storage
from imagenet2012_local.engine import worker_pool
from tests.helpers import DUMMY_DIR, build, two_lines

_HUGE = str(10**9)
_NUMBERS = (
    settings.WORKERS_ENV_VAR,
    settings.READS_IN_FLIGHT_ENV_VAR,
    settings.SYNC_EVERY_MB_ENV_VAR,
)


class _Children:
  """Every child process of this one seen while it runs, read from /proc."""

  def __init__(self):
    self.seen: set[int] = set()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._watch, daemon=True)

  def __enter__(self) -> _Children:
    self._thread.start()
    return self

  def __exit__(self, *exc_info) -> None:
    self._stop.set()
    self._thread.join()

  def _watch(self) -> None:
    me = os.getpid()
    while not self._stop.wait(0.02):  # Workers live as long as their pool.
      for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
          # The parent's id is the 2nd field after the command's ')'.
          parent = int(stat.read_text().rpartition(')')[2].split()[1])
        except (OSError, ValueError, IndexError):
          continue  # The process ended meanwhile.
        if parent == me:
          self.seen.add(int(stat.parent.name))


def _files(data_dir: Path) -> dict[str, bytes]:
  version = next(data_dir.glob('imagenet2012_local/*'))
  return {
      f.name: f.read_bytes() for f in version.iterdir() if f.name != 'build_stats.json'
  }


@pytest.fixture
def no_number_settings(monkeypatch):
  for env_var in _NUMBERS:
    monkeypatch.delenv(env_var, raising=False)
  return monkeypatch


def test_huge_requests_start_no_more_workers_than_cores_and_build_the_same_bytes(
    dummy_build, tmp_path, no_number_settings, capfd
):
  for env_var in _NUMBERS:
    no_number_settings.setenv(env_var, _HUGE)
  cores = len(os.sched_getaffinity(0))
  with _Children() as children:
    build(DUMMY_DIR, tmp_path)
  assert len(children.seen) <= cores
  assert children.seen or cores == 1  # Workers ran: the count says something.
  stderr = capfd.readouterr().err
  for env_var, used in (
      (settings.WORKERS_ENV_VAR, cores),
      (settings.READS_IN_FLIGHT_ENV_VAR, 256),
      (settings.SYNC_EVERY_MB_ENV_VAR, 8192),
  ):
    assert stderr.count(f'{env_var}={_HUGE} lowered to {used}: ') == 1
  assert _files(tmp_path) == _files(dummy_build)


def test_each_number_is_bounded(no_number_settings):
  for env_var in _NUMBERS:
    no_number_settings.setenv(env_var, _HUGE)
  assert settings.workers() == len(os.sched_getaffinity(0))
  assert settings.reads_in_flight() == 256
  assert storage.reads_in_flight('/data/archive.tar', settings.reads_in_flight()) == 256
  assert storage.reads_in_flight('s3://bucket/archive.tar', settings.reads_in_flight()) == 256
  assert settings.sync_every_bytes() == 8192 << 20
  lowered = settings.lowered()
  assert [line.partition('=')[0] for line in lowered] == list(_NUMBERS)
  assert all(line.count('\n') == 0 and line.endswith('.') for line in lowered)


def test_numbers_within_bounds_are_used_as_asked_and_said_nothing_of(
    no_number_settings,
):
  no_number_settings.setenv(settings.READS_IN_FLIGHT_ENV_VAR, '256')
  no_number_settings.setenv(settings.SYNC_EVERY_MB_ENV_VAR, '0')
  no_number_settings.setenv(settings.WORKERS_ENV_VAR, '1')
  assert settings.reads_in_flight() == 256
  assert settings.sync_every_bytes() == 0
  assert settings.workers() == 1
  assert settings.lowered() == []


def test_workers_are_bounded_by_the_cpus_this_process_may_use(no_number_settings):
  allowed = os.sched_getaffinity(0)
  os.sched_setaffinity(0, {min(allowed)})
  try:
    no_number_settings.setenv(settings.WORKERS_ENV_VAR, '4')
    assert settings.workers() == 1
    assert settings.lowered() == [
        f'{settings.WORKERS_ENV_VAR}=4 lowered to 1: more worker processes'
        ' than the CPUs this process may use (1) only take turns on them.'
    ]
    no_number_settings.delenv(settings.WORKERS_ENV_VAR)
    assert settings.workers() == 1  # The default, too.
  finally:
    os.sched_setaffinity(0, allowed)


@pytest.mark.parametrize(
    'value, used', [('9' * 5000, 256), ('0' * 5000 + '3', 3)]
)  # `int` refuses more than 4,300 digits.
def test_numbers_too_long_for_int_are_read_too(no_number_settings, value, used):
  no_number_settings.setenv(settings.READS_IN_FLIGHT_ENV_VAR, value)
  assert settings.reads_in_flight() == used


@pytest.mark.parametrize('value', ['0', '-1', '²', '1.5', 'many'])
def test_what_is_not_a_number_is_a_two_line_error(no_number_settings, value):
  no_number_settings.setenv(settings.WORKERS_ENV_VAR, value)
  with pytest.raises(settings.SettingError) as raised:
    settings.workers()
  what, fix = two_lines(raised.value)
  assert f'{settings.WORKERS_ENV_VAR}={value!r}' in what
  assert fix.startswith(f'Set {settings.WORKERS_ENV_VAR} to a number from 1 to ')


def _pid(_: int) -> int:
  return os.getpid()


def test_a_pool_starts_no_more_workers_than_items_wait():
  with worker_pool.WorkerPool(8) as pool:
    assert pool.started == 0
    with _Children() as children:
      assert len(list(pool(_pid, range(3)))) == 3
    assert pool.started == len(children.seen) == 3
    many = set(pool(_pid, range(40)))
    assert pool.started == len(many) == 8
