"""Runs one command and samples its process tree and output directory.

Sampling (every ~0.1 s) gives peak RSS of the whole tree and the files under
the data dir. Temporary disk is, at each sample, the bytes of files that are
not part of the final output; its peak counts spill files even when they are
deleted while the output grows. A file is part of the output when its path,
with the staging folders it goes through mapped to where it ends up (see
`output_path`), is a path of the final output; a file with several hard links
is counted once. Bytes read and written come from the kernel's per-process
`rchar` and `wchar` counters, CPU time from their user and system times.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from imagenet2012_local.engine import resume

_INTERVAL_S = 0.1
# Folders whose files become the output under another path:
# - TFDS writes into `incomplete.<random>_<version>/` and renames it at the end;
_TFDS_INCOMPLETE = re.compile(r'incomplete\.[A-Za-z0-9]+_')
# - `publish.staged` (build-classic, export-tpu) writes into
#   `<output>.incomplete-<random>/` (tempfile's random letters) and renames it;
_STAGED = re.compile(r'\.incomplete-[a-z0-9_]+(?=/|$)')
# - a resumable TFDS build writes `<version>.interrupted-build/<shard>.partial`
#   (or, reading the archives in order, `<shard>.in-order`, sized in advance),
#   renames it to `<shard>`, and hard-links that into the output (`resume`).
_KEPT_SHARD = re.compile(
    re.escape(resume.FOLDER_SUFFIX) + r'(/[^/]+?)(?:\.partial|\.in-order)?$'
)


@dataclasses.dataclass
class RunResult:
  """What one run of one command measured."""

  returncode: int
  timed_out: bool
  wall_s: float
  peak_rss_bytes: int
  peak_dir_bytes: int
  final_dir_bytes: int
  temp_bytes: int  # Peak bytes of files that are not in the final output.
  read_chars: int
  write_chars: int
  cpu_s: float  # User and system seconds of the whole tree.
  log_tail: str


def output_path(relative_path: str) -> str:
  """Where the file at `relative_path` ends up if the build succeeds: its path
  with the staging folders above mapped to the output's."""
  relative_path = _TFDS_INCOMPLETE.sub('', relative_path)
  relative_path = _STAGED.sub('', relative_path)
  return _KEPT_SHARD.sub(r'\1', relative_path)


def file_sizes(path: Path) -> dict[str, int]:
  """Size of each file under `path`, by `output_path`; a file hard-linked
  under several names is the same bytes, counted once."""
  sizes = {}
  linked = set()
  for root, _, files in os.walk(path):
    for name in files:
      full = os.path.join(root, name)
      try:
        stat = os.lstat(full)
      except FileNotFoundError:  # Renamed or deleted by the run meanwhile.
        continue
      if stat.st_nlink > 1:
        if (stat.st_dev, stat.st_ino) in linked:
          continue
        linked.add((stat.st_dev, stat.st_ino))
      sizes[output_path(os.path.relpath(full, path))] = stat.st_size
  return sizes


def _descendants_sample(
    root: psutil.Process,
) -> tuple[int, list[psutil.Process]]:
  """(summed RSS, processes) of root's live descendants, root excluded."""
  rss = 0
  alive = []
  for proc in root.children(recursive=True):
    try:
      rss += proc.memory_info().rss
      alive.append(proc)
    except psutil.NoSuchProcess:
      pass
  return rss, alive


def _tree_io(
    root: psutil.Process, last_seen: list[psutil.Process]
) -> tuple[int, int]:
  """(rchar, wchar) of the tree, once `root` has exited but is not reaped.

  The kernel adds a reaped child's I/O counters to its parent's, so the root's
  counters cover every descendant reaped inside the tree; descendants still
  alive were orphaned, and are added.
  """
  counters = root.io_counters()
  read_chars, write_chars = counters.read_chars, counters.write_chars
  for proc in last_seen:
    try:
      counters = proc.io_counters()
    except psutil.NoSuchProcess:  # Reaped: already in an ancestor's counter.
      continue
    read_chars += counters.read_chars
    write_chars += counters.write_chars
  return read_chars, write_chars


def _tree_cpu_s(root: psutil.Process, last_seen: list[psutil.Process]) -> float:
  """User and system seconds of the tree, once `root` has exited but is not
  reaped: as `_tree_io`, the root's own and its reaped children's, plus any
  orphans still alive."""
  total = 0.0
  for proc in [root, *last_seen]:
    try:
      times = proc.cpu_times()
    except psutil.NoSuchProcess:  # Reaped: already in an ancestor's times.
      continue
    total += times.user + times.system
    if proc is root:
      total += times.children_user + times.children_system
  return total


def _kill(procs: list[psutil.Process]) -> None:
  for proc in procs:
    try:
      proc.kill()
    except psutil.NoSuchProcess:
      pass


def _exited(pid: int) -> bool:
  """Whether `pid` has exited, leaving it unreaped so /proc still shows it."""
  flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
  return os.waitid(os.P_PID, pid, flags) is not None


def run_and_measure(
    argv: Sequence[str],
    env: Mapping[str, str],
    data_dir: Path,
    log_path: Path,
    timeout_s: float | None = None,
) -> RunResult:
  """Runs `argv` to completion, sampling it every ~0.1 s.

  Args:
    argv: The command.
    env: Its full environment.
    data_dir: The directory whose size is tracked (its peak and final size).
    log_path: Where the command's stdout and stderr go.
    timeout_s: After this long the whole tree is killed (a hung worker pool
      would otherwise stall every later run).

  Returns:
    The measurements; a failed command is reported through `returncode`.
  """
  peak_rss = 0
  samples: list[dict[str, int]] = []
  with open(log_path, 'wb') as log:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=dict(env), stdout=log, stderr=log)
    root = psutil.Process(proc.pid)
    descendants: list[psutil.Process] = []
    timed_out = False
    while not _exited(proc.pid):
      overdue = timeout_s and time.perf_counter() - start > timeout_s
      if overdue and not timed_out:
        timed_out = True
        _kill(root.children(recursive=True) + [root])
      root_rss = root.memory_info().rss
      child_rss, descendants = _descendants_sample(root)
      peak_rss = max(peak_rss, root_rss + child_rss)
      samples.append(file_sizes(data_dir))
      time.sleep(_INTERVAL_S)
    wall = time.perf_counter() - start
    read_chars, write_chars = _tree_io(root, descendants)
    cpu_s = _tree_cpu_s(root, descendants)
    returncode = proc.wait()
  final = file_sizes(data_dir)
  samples.append(final)
  return RunResult(
      returncode=returncode,
      timed_out=timed_out,
      wall_s=wall,
      peak_rss_bytes=peak_rss,
      peak_dir_bytes=max(sum(sample.values()) for sample in samples),
      final_dir_bytes=sum(final.values()),
      temp_bytes=max(
          sum(size for name, size in sample.items() if name not in final)
          for sample in samples
      ),
      read_chars=read_chars,
      write_chars=write_chars,
      cpu_s=cpu_s,
      log_tail=_tail(log_path),
  )


def _tail(path: Path, num_bytes: int = 4000) -> str:
  with open(path, 'rb') as f:
    f.seek(max(0, path.stat().st_size - num_bytes))
    return f.read().decode(errors='replace')
