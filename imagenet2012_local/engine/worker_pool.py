"""Worker processes on this machine for a build without Beam.

One process keeps one core busy with Python and system calls while the disk
could take more (docs/performance.md). So a build hands its units of work
(groups of inner tars to index, shards to write) to `WorkerPool`, whose
`map` has builtin `map`'s signature and returns results in item order: the
output is the same, byte for byte, with any number of workers. A worker is started
only when an item waits for it, so a pool never runs more processes than
items were ever in progress at once.

The workers are plain Python processes running `work`, not
`multiprocessing`'s: those import the launching program's main module again,
and under the `tfds` CLI that imports TensorFlow, hundreds of MB in every
worker; these import only the modules of this package their work needs,
neither the builder nor TFDS.

Protocol, over two pipes per worker with `multiprocessing.connection`'s
framing (pickles): the build sends `(function, item)`, or `(None, item)` for
the function it sent that worker last (a function is pickled with its
object: a shard writer holds every shard's name and key, ~100 bytes a shard,
so sending it with each of the classic layout's 1,152 shards would pickle
~130 MB); the worker answers `(True, result)` or `(False, exception, its
traceback as text)`. A worker exits when its pipe closes, is killed when the
build's process dies (PR_SET_PDEATHSIG, Linux), and ignores Ctrl-C: the
build's process stops it, letting it finish the item it holds, so nothing is
left half-written.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import connection
from typing import TypeVar

from imagenet2012_local import errors
from imagenet2012_local.engine import memory

_T = TypeVar('_T')
_R = TypeVar('_R')
_PR_SET_PDEATHSIG = 1  # From <sys/prctl.h>.
# How long a stopping worker may take to finish its item (a full ImageNet
# shard is ~140 MB: seconds of reading, even from a slow disk) before it is
# killed.
_STOP_SECONDS = 120
_PACKAGE = __name__.partition('.')[0]
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGE_ROOT = os.path.dirname(_PACKAGE_DIR)
# What a worker process runs. The top package is entered without running its
# `__init__`, which defines the TFDS builder, of no use to a worker (and
# TFDS's import in every worker; `python -m` of this module would also
# import it twice).
_WORKER_CODE = (
    'import sys, types;'
    f' package = types.ModuleType({_PACKAGE!r});'
    f' package.__path__ = [{_PACKAGE_DIR!r}];'
    f' sys.modules[{_PACKAGE!r}] = package;'
    f' from {__name__} import work; work(sys.argv[1:])'
)


class WorkerDiedError(errors.Imagenet2012LocalError, RuntimeError):
  """A worker process ended without answering."""


class _Worker:
  """One worker process and the two ends of its pipes."""

  def __init__(self):
    to_worker, from_build = os.pipe()
    to_build, from_worker = os.pipe()
    env = dict(os.environ)
    # The workers import the very copy of this package the build runs.
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (_PACKAGE_ROOT, env.get('PYTHONPATH')) if p
    )
    self.process = subprocess.Popen(
        [sys.executable, '-c', _WORKER_CODE, str(to_worker), str(from_worker), str(os.getpid())],
        pass_fds=(to_worker, from_worker),
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(to_worker)
    os.close(from_worker)
    self.requests = connection.Connection(from_build, readable=False)
    self.answers = connection.Connection(to_build, writable=False)

  def answer(self) -> object:
    """The result of the item it was sent; raises the item's exception."""
    try:
      answer = self.answers.recv()
    except EOFError:
      code = self.process.wait()
      raise WorkerDiedError(errors.two_lines(
          f'A worker process of the build ended (exit status {code}; -9 is'
          ' a kill, e.g. for lack of memory) before it finished its work',
          'Run the build again: it resumes. If it happens again, set'
          ' IMAGENET2012_LOCAL_WORKERS=1 to build in one process.',
      )) from None
    if answer[0]:
      return answer[1]
    _, exception, remote_traceback = answer
    exception.add_note(f'In a worker process:\n{remote_traceback}')
    raise exception

  def stop(self) -> None:
    """Lets the worker finish its item, then exit (its pipe closes)."""
    self.requests.close()
    try:
      self.process.wait(_STOP_SECONDS)
    except subprocess.TimeoutExpired:
      self.process.kill()
      self.process.wait()
    self.answers.close()


class WorkerPool:
  """`map` on worker processes: `with WorkerPool(n) as pool: pool(fn, items)`.

  `fn`, the items and the results must pickle, and `fn` must be importable
  from this package (e.g. a method of a class defined in it).
  """

  def __init__(self, workers: int):
    """A pool of up to `workers` processes, each started when an item waits
    for it (a start is a new Python's start-up; the modules its work needs
    are imported with its first item in any case)."""
    self._size = workers
    self._workers: list[_Worker] = []
    self._closed = False

  @property
  def started(self) -> int:
    """How many worker processes the pool has started so far."""
    return len(self._workers)

  def __enter__(self) -> WorkerPool:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def close(self) -> None:
    """Stops the workers once each has finished its item, so that nothing
    is left half-written (a shard that fails deletes its own)."""
    for worker in self._workers:
      worker.stop()
    self._workers = []
    self._closed = True

  def __call__(self, fn: Callable[[_T], _R], items: Iterable[_T]) -> Iterator[_R]:
    """`fn` of each item, on the workers; results in item order."""
    if self._closed:
      raise ValueError('the worker pool is closed')
    pending = enumerate(items)
    idle = list(self._workers)
    sent_fn: set[_Worker] = set()  # Workers that hold `fn` already.
    busy: dict[connection.Connection, tuple[_Worker, int]] = {}
    done: dict[int, _R] = {}
    next_result = 0
    try:
      while True:
        to_send = list(itertools.islice(pending, len(idle) + self._size - self.started))
        # Started before any is sent an item: a send waits for its worker to
        # read it when `fn` outgrows the pipe (a shard writer: ~100 bytes a
        # shard), and the starts would add up one after another.
        idle += [self._start_worker() for _ in range(len(to_send) - len(idle))]
        for index, item in to_send:
          worker = idle.pop()
          worker.requests.send((None if worker in sent_fn else fn, item))
          sent_fn.add(worker)
          busy[worker.answers] = (worker, index)
        if next_result in done:
          yield done.pop(next_result)
          next_result += 1
        elif not busy:
          return
        else:
          for answers in connection.wait(list(busy)):
            worker, index = busy.pop(answers)
            done[index] = worker.answer()
            idle.append(worker)
    finally:
      if busy:  # Given up midway: answers still due would confuse a next call.
        self.close()

  def _start_worker(self) -> _Worker:
    worker = _Worker()
    self._workers.append(worker)
    return worker


def _serve(requests: connection.Connection, answers: connection.Connection) -> None:
  """A worker's loop: runs each (function, item) received until the pipe closes."""
  fn = None
  while True:
    try:
      new_fn, item = requests.recv()
    except EOFError:
      return
    if new_fn is not None:
      fn = new_fn
    try:
      answer = (True, fn(item))
    except BaseException as e:  # pylint: disable=broad-except
      answer = (False, e, traceback.format_exc())
    memory.release_freed_heap()  # The item's images and records.
    try:
      answers.send(answer)
    except Exception as e:  # pylint: disable=broad-except
      # An exception or result that does not pickle: say what it was.
      answers.send((False, RuntimeError(f'{answer[1:2]!r:.2000}'), repr(e)))


def work(argv: list[str]) -> None:
  """A worker process's life: `argv` holds its pipes' descriptors and the
  build's process id."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the build stops us.
  requests_fd, answers_fd, build_pid = map(int, argv)
  if sys.platform.startswith('linux'):
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
  if os.getppid() != build_pid:  # The build died before the line above.
    return
  _serve(
      connection.Connection(requests_fd, writable=False),
      connection.Connection(answers_fd, readable=False),
  )

