"""Two builds of one output: the second fails at once, in two lines naming the
folder and the first build's process; a lock file left by a killed build
blocks nothing (`build_lock`)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagenet2012_local.gate import build_lock
from imagenet2012_local.commands import cli
from imagenet2012_local.engine import resume
from imagenet2012_local import settings
from tests.helpers import (
    NAME,
    VAL_TAR,
    build,
    failed_build,
    manual_dir_with,
    read_split,
    two_lines,
)
from tests.test_os_errors import cli_error

_ROOT = Path(__file__).resolve().parent.parent
# Holds the claim on a folder (argv[1]) until killed, as a build does.
_HOLD = """
import sys, time
from imagenet2012_local.gate import build_lock
with build_lock.claimed(sys.argv[1], sys.argv[1], '--output_dir'):
  print('held', flush=True)
  time.sleep(600)
"""


@contextlib.contextmanager
def _held_elsewhere(folder: Path) -> Iterator[subprocess.Popen]:
  """Another process holding `folder`'s claim; killed (SIGKILL) at the end."""
  process = subprocess.Popen(
      [sys.executable, '-c', _HOLD, str(folder)], stdout=subprocess.PIPE, cwd=_ROOT
  )
  try:
    assert process.stdout.readline() == b'held\n'
    yield process
  finally:
    process.kill()
    process.wait()


def _lock_file(folder: Path) -> Path:
  return folder.with_name(folder.name + build_lock.LOCK_SUFFIX)


def _holds_lock(folder: Path, pid: int) -> bool:
  """Whether process `pid` holds `folder`'s lock: it writes its id once it does."""
  try:
    return _lock_file(folder).read_text().strip() == str(pid)
  except FileNotFoundError:
    return False


def test_a_second_tfds_build_fails_at_once_and_a_killed_one_blocks_nothing(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  data_dir = tmp_path / 'data'
  version = data_dir / NAME / '5.1.0'
  with _held_elsewhere(version) as other:
    start = time.monotonic()
    what, fix = failed_build(manual, data_dir, build_lock.BuildInProgressError)
    assert time.monotonic() - start < 30  # At once, not after the build.
    assert what == f'Another build is writing {version} (process {other.pid}).'
    assert fix == 'Wait for it to finish, or build into another folder: --data_dir=<folder>.'
  assert _lock_file(version).exists()  # Left by the killed process.
  build(manual, data_dir)
  assert len(read_split(data_dir, 'validation')) == 10
  assert not _lock_file(version).exists()


def test_a_second_build_classic_deletes_nothing_of_the_first(tmp_path, capsys):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  out = tmp_path / 'out'
  kept = tmp_path / f'out{resume.FOLDER_SUFFIX}'
  kept.mkdir()
  (kept / 'README.txt').write_text('The first build is writing here.')
  argv = ['build-classic', '--manual_dir', str(manual), '--output_dir', str(out)]
  with _held_elsewhere(out) as other:
    assert cli.main([*argv, '--fresh']) == 1  # --fresh deletes kept shards.
    what, fix = cli_error(capsys, 'build-classic')
    assert what == f'Another build is writing {out} (process {other.pid}).'
    assert fix.endswith('--output_dir=<folder>.')
    assert (kept / 'README.txt').read_text() == 'The first build is writing here.'
    assert not out.exists()
  assert cli.main(argv) == 0
  assert sorted(p.name for p in out.iterdir())[:1] == ['validation-00000-of-00128']
  assert not _lock_file(out).exists() and not kept.exists()


def test_export_tpu_into_a_folder_being_written_fails_at_once(
    tmp_path, dummy_build, capsys
):
  out = tmp_path / 'tpu'
  with _held_elsewhere(out) as other:
    argv = ['export-tpu', '--data_dir', str(dummy_build), '--output_dir', str(out)]
    assert cli.main(argv) == 1
    assert cli_error(capsys, 'export-tpu')[0] == (
        f'Another build is writing {out} (process {other.pid}).'
    )
  assert not out.exists()


def test_a_real_build_holds_its_version_folder(tmp_path):
  # A whole build in another process, stopped (SIGSTOP) while it holds the
  # lock, then killed: the loser is told at once, the next build succeeds.
  manual = manual_dir_with(tmp_path, VAL_TAR)
  data_dir = tmp_path / 'data'
  version = data_dir / NAME / '5.1.0'
  other = subprocess.Popen(
      [sys.executable, '-m', 'tests.interrupted_build', str(data_dir), 'none'],
      cwd=_ROOT,
      env={**os.environ, settings.WORKERS_ENV_VAR: '1'},
  )
  try:
    while not _holds_lock(version, other.pid):
      assert other.poll() is None, 'the build ended before it was seen'
      time.sleep(0.005)
    other.send_signal(signal.SIGSTOP)
    with pytest.raises(build_lock.BuildInProgressError) as raised:
      build(manual, data_dir)
    assert two_lines(raised.value)[0] == (
        f'Another build is writing {version} (process {other.pid}).'
    )
  finally:
    other.kill()
    other.wait()
  build(manual, data_dir)
  assert len(read_split(data_dir, 'validation')) == 10
