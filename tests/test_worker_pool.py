"""Worker processes: results in order, errors and deaths reported, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from imagenet2012_local.engine import worker_pool

_ROOT = Path(__file__).resolve().parent.parent


def _slow_square(n: int) -> tuple[int, int]:
  time.sleep(0.02 * (n % 3))  # Later items often finish first.
  return n * n, os.getpid()


def _fail_on_three(n: int) -> int:
  if n == 3:
    raise ValueError(f'item {n} is bad')
  return n


def _die_on_two(n: int) -> int:
  if n == 2:
    os.kill(os.getpid(), signal.SIGKILL)
  return n


def test_results_come_in_item_order_from_several_workers():
  with worker_pool.WorkerPool(3) as pool:
    results = list(pool(_slow_square, range(20)))
    again = list(pool(_slow_square, [5, 4]))  # A pool serves several maps.
  assert [square for square, _ in results] == [n * n for n in range(20)]
  assert len({pid for _, pid in results}) == 3
  assert os.getpid() not in {pid for _, pid in results}
  assert [square for square, _ in again] == [25, 16]


class _Negate:
  """A function object that counts how often the build pickles it."""

  pickled = 0

  def __call__(self, n: int) -> int:
    return -n

  def __getstate__(self) -> dict[str, object]:
    type(self).pickled += 1
    return {}


def test_a_map_sends_its_function_once_to_each_worker():
  _Negate.pickled = 0
  with worker_pool.WorkerPool(2) as pool:
    negated = list(pool(_Negate(), range(10)))
    sent_once_each = _Negate.pickled
    squares = [square for square, _ in pool(_slow_square, range(4))]
    negated_again = list(pool(_Negate(), [7]))
  assert negated == [-n for n in range(10)]
  assert sent_once_each == 2  # Not once per item.
  assert squares == [0, 1, 4, 9]  # The next map's function, not the last one.
  assert negated_again == [-7]


def test_a_workers_exception_is_raised_with_its_traceback():
  with pytest.raises(ValueError, match='item 3 is bad') as raised:
    with worker_pool.WorkerPool(2) as pool:
      list(pool(_fail_on_three, range(6)))
  notes = '\n'.join(raised.value.__notes__)
  assert 'In a worker process' in notes and '_fail_on_three' in notes


def test_a_dead_worker_is_an_error_that_says_what_to_do():
  with pytest.raises(worker_pool.WorkerDiedError) as raised:
    with worker_pool.WorkerPool(2) as pool:
      list(pool(_die_on_two, range(6)))
  first, second = str(raised.value).split('\n')
  assert 'exit status -9' in first
  assert 'IMAGENET2012_LOCAL_WORKERS=1' in second


def test_a_closed_pool_refuses_work():
  pool = worker_pool.WorkerPool(1)
  pool.close()
  with pytest.raises(ValueError, match='closed'):
    list(pool(_slow_square, [1]))


_KILLED_BUILD = '''
import os, signal, sys
from imagenet2012_local.engine import worker_pool
from tests.test_worker_pool import _slow_square
pool = worker_pool.WorkerPool(2)
list(pool(_slow_square, range(4)))  # Both workers are up.
os.kill(os.getpid(), signal.SIGKILL)
'''


def _processes_with(marker: str) -> list[int]:
  pids = []
  for environ in Path('/proc').glob('[0-9]*/environ'):
    try:
      if marker.encode() in environ.read_bytes():
        pids.append(int(environ.parent.name))
    except OSError:
      pass  # Gone, or not ours.
  return pids


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='PR_SET_PDEATHSIG')
def test_workers_die_with_the_build():
  marker = f'WORKER_POOL_TEST={uuid.uuid4()}'
  name, value = marker.split('=')
  killed = subprocess.run(
      [sys.executable, '-c', _KILLED_BUILD],
      cwd=_ROOT,
      env={**os.environ, name: value},
      capture_output=True,
      timeout=60,
  )
  assert killed.returncode == -signal.SIGKILL, killed.stderr
  deadline = time.monotonic() + 10
  while _processes_with(marker) and time.monotonic() < deadline:
    time.sleep(0.1)
  assert _processes_with(marker) == []


def _imports_tfds(layout, _) -> bool:
  del layout  # Unpickled by now, which is what counts.
  return 'tensorflow_datasets' in sys.modules


def test_workers_take_a_tfds_layout_without_importing_tfds(tmp_path):
  # TFDS would cost each worker ~16 MB; the module imports it only here,
  # so that the worker, which imports this module, does not.
  import functools  # pylint: disable=g-import-not-at-top

  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  from imagenet2012_local.layouts import tfds_layout  # pylint: disable=g-import-not-at-top

  builder = tfds.builder('imagenet2012_local', data_dir=tmp_path)
  layout = tfds_layout.TfdsLayout(builder, ['train'])
  with worker_pool.WorkerPool(1) as pool:
    assert list(pool(functools.partial(_imports_tfds, layout), [0])) == [False]
