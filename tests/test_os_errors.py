"""OS errors end in two lines naming the user's folder, from `tfds build` and
from `imagenet2012-local`: a disk that fills up while shards are written or
recorded (the first error wins, no half-written record is left), an output on
a read-only file system; and a rerun after a full disk counts the kept
shards as space it already holds. (Checksum tables:
`test_checksum_table_errors`; two builds of one output: `test_build_lock`.)

Full and read-only disks are real: small tmpfs mounts (root only; else the
tests skip)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

from imagenet2012_local.gate import build_lock
from imagenet2012_local.commands import cli
from imagenet2012_local.gate import disk_space
from imagenet2012_local.engine import resume
from imagenet2012_local import settings
from imagenet2012_local import tfds_internals
from tests import fake_archives
from tests.helpers import (
    NAME,
    VAL_TAR,
    build,
    failed_build,
    manual_dir_holding,
    manual_dir_with,
    read_split,
    two_lines,
    val_images,
)

_ERROR = 'imagenet2012-local {}: error: '


@contextlib.contextmanager
def _tmpfs(mount_point: Path, options: str) -> Iterator[Path]:
  """A tmpfs mounted at `mount_point` with `options` (e.g. `size=4m`)."""
  mount_point.mkdir(parents=True)
  mounted = subprocess.run(
      ['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', str(mount_point)],
      capture_output=True,
      check=False,
  )
  if mounted.returncode:
    pytest.skip('cannot mount a tmpfs here (needs root)')
  try:
    yield mount_point
  finally:
    subprocess.run(['umount', str(mount_point)], check=True)


def _read_only(mount_point: Path) -> None:
  subprocess.run(['mount', '-o', 'remount,ro', str(mount_point)], check=True)


def _free_bytes(folder: Path) -> int:
  stat = os.statvfs(folder)
  return stat.f_bavail * stat.f_frsize


def cli_error(capsys: pytest.CaptureFixture[str], command: str) -> tuple[str, str]:
  """The two lines of the error `imagenet2012-local <command>` printed (its
  last lines: after the error, nothing)."""
  err = capsys.readouterr().err.splitlines()
  prefix = _ERROR.format(command)
  at = next(i for i, line in enumerate(err) if line.startswith(prefix))
  assert len(err) == at + 2, err[at:]
  return err[at].removeprefix(prefix), err[at + 1]


def _files(folder: Path) -> dict[str, bytes]:
  return {
      str(p.relative_to(folder)): p.read_bytes()
      for p in sorted(folder.rglob('*'))
      if p.is_file()
  }


def _build_classic_argv(manual: Path, output_dir: Path, shards: int) -> list[str]:
  return [
      'build-classic',
      '--manual_dir', str(manual),
      '--output_dir', str(output_dir),
      '--validation_shards', str(shards),
      '--no_verify',
  ]  # fmt: skip


# A full disk.


def _fill_inodes(folder: Path) -> list[Path]:
  """Empty files in `folder` until the file system has no inode left."""
  folder.mkdir()
  files = []
  while True:
    path = folder / str(len(files))
    try:
      path.touch()
    except OSError as e:
      assert e.errno == errno.ENOSPC
      return files
    files.append(path)


# Inodes left for each command: a few go to its folders, lock and README.
@pytest.mark.parametrize('command, inodes', [('tfds build', 12), ('build-classic', 9)])
def test_a_full_disk_while_kept_shards_are_recorded_is_the_error_seen(
    tmp_path, monkeypatch, capsys, caplog, command, inodes
):
  # Inodes run out: the build gets past its start, writes a few shards, and
  # then neither the next shard nor the records of the finished ones fit.
  monkeypatch.setenv(settings.WORKERS_ENV_VAR, '1')
  monkeypatch.setattr(disk_space, '_MARGIN_BYTES', 0)
  monkeypatch.setattr(tfds_internals, 'number_of_shards', lambda _, n: min(8, n))
  manual = manual_dir_holding(
      tmp_path, VAL_TAR, fake_archives.tar_bytes(val_images(16))
  )
  with _tmpfs(tmp_path / 'disk', 'size=16m,nr_inodes=64') as disk:
    ballast = _fill_inodes(disk / 'ballast')
    for path in ballast[-inodes:]:
      path.unlink()
    out = disk / 'out'
    if command == 'tfds build':
      what, fix = failed_build(
          manual, out, disk_space.DiskSpaceError, verify_checksums=False
      )
      output_parent = out / NAME
    else:
      argv = _build_classic_argv(manual, out, shards=8)
      assert cli.main(argv) == 1
      what, fix = cli_error(capsys, 'build-classic')
      output_parent = disk
    assert what.startswith(f'The disk filled up while writing {output_parent}/')
    assert what.endswith('(No space left on device); nothing was published.')
    assert fix.startswith(f'Free up space under {output_parent} ')
    assert not list(disk.rglob('*.partial'))
    assert not list(disk.rglob('*.lock'))
    # The second failure, recording the finished shards, is one log line.
    [recording] = [r for r in caplog.records if 'could not be recorded' in r.message]
    assert recording.levelno == logging.WARNING and '\n' not in recording.message
    assert 'After DiskSpaceError' in recording.message

    for path in ballast[:-inodes]:  # The user frees space; the rerun builds.
      path.unlink()
    if command == 'tfds build':
      build(manual, out, verify_checksums=False)
      assert len(read_split(out, 'validation')) == 16
    else:
      assert cli.main(argv) == 0
      reference = tmp_path / 'reference'
      assert cli.main(_build_classic_argv(manual, reference, shards=8)) == 0
      assert _files(out) == _files(reference)


def test_a_record_that_does_not_fit_is_not_left_half_written(tmp_path):
  with _tmpfs(tmp_path / 'disk', 'size=1m') as disk:
    kept = resume.KeptShards(disk / 'kept', flush_in_batches=True)
    kept.partial_path('shard').write_bytes(b'x')
    kept.finish('shard', 'key', {'num_bytes': 1})
    (disk / 'ballast').write_bytes(bytes(_free_bytes(disk)))
    assert _free_bytes(disk) == 0
    kept.add_finished('shard', 'key', {'num_bytes': 1})
    with pytest.raises(OSError) as raised:
      kept.record_finished()
    assert raised.value.errno == errno.ENOSPC
    assert sorted(p.name for p in (disk / 'kept').iterdir()) == ['README.txt', 'shard']


def test_the_rerun_after_a_full_disk_counts_the_kept_shards_as_held(
    tmp_path, monkeypatch, capsys
):
  monkeypatch.setenv(settings.WORKERS_ENV_VAR, '1')
  monkeypatch.setattr(disk_space, '_MARGIN_BYTES', 0)
  data = fake_archives.tar_bytes(val_images(48, size=256))
  manual = manual_dir_holding(tmp_path, VAL_TAR, data)
  with _tmpfs(tmp_path / 'disk', 'size=6m') as disk:
    out = disk / 'out'
    argv = _build_classic_argv(manual, out, shards=16)
    ballast = disk / 'ballast'  # Room for about half the output.
    ballast.write_bytes(bytes(_free_bytes(disk) - len(data) // 2))
    with monkeypatch.context() as passed:  # As if the space went meanwhile.
      passed.setattr(disk_space, 'check_free_space', lambda *_: None)
      assert cli.main(argv) == 1
    assert 'The disk filled up' in cli_error(capsys, 'build-classic')[0]
    kept = disk / f'out{resume.FOLDER_SUFFIX}'
    kept_bytes = sum(p.stat().st_size for p in kept.glob('validation-*'))
    assert kept_bytes > len(data) // 4

    # Freed: less than the archive needs, more than the shards not kept.
    ballast.unlink()
    needed = int(len(data) * (1 + disk_space._MARGIN_FRACTION))
    ballast.write_bytes(bytes(_free_bytes(disk) - needed + kept_bytes * 3 // 4))
    assert _free_bytes(disk) < needed  # The check without the kept shards.
    assert cli.main(argv) == 0
    assert 'resuming: ' in capsys.readouterr().err
    reference = tmp_path / 'reference'
    assert cli.main(_build_classic_argv(manual, reference, shards=16)) == 0
    assert _files(out) == _files(reference)


def test_the_free_space_check_counts_finished_kept_shards(tmp_path, monkeypatch):
  monkeypatch.setattr(disk_space, '_MARGIN_BYTES', 0)
  with _tmpfs(tmp_path / 'disk', 'size=8m') as disk:
    kept = disk / f'5.1.0{resume.FOLDER_SUFFIX}'
    kept.mkdir()
    (kept / 'validation.tfrecord-00000-of-00002').write_bytes(bytes(3 << 20))
    (kept / 'validation.tfrecord-00001-of-00002.partial').write_bytes(bytes(1 << 20))
    free = _free_bytes(disk)

    def archives_taking(output_bytes: int) -> int:
      return int(output_bytes / (1 + disk_space._MARGIN_FRACTION))

    fits = archives_taking(free + (3 << 20) - 8192)
    assert fits * (1 + disk_space._MARGIN_FRACTION) > free  # Refused before.
    disk_space.check_free_space(disk, fits, kept)
    # The half-written shard is no output: it does not count.
    with pytest.raises(disk_space.DiskSpaceError) as raised:
      disk_space.check_free_space(disk, archives_taking(free + (4 << 20) - 8192), kept)
    what, fix = two_lines(raised.value)
    assert what.startswith(f'Not enough free disk space under {disk}: the build needs')
    assert f'; 3.1 MB of shards kept in {kept} count), and' in what
    assert fix.startswith(f'Free up space under {disk} ')


# A read-only output.


@pytest.fixture
def read_only_disk(tmp_path) -> Iterator[Path]:
  """A read-only tmpfs holding an empty folder, `existing`."""
  with _tmpfs(tmp_path / 'read_only', 'size=1m') as disk:
    (disk / 'existing').mkdir()
    _read_only(disk)
    yield disk


@pytest.mark.parametrize('data_dir_name', ['new', 'existing'])
def test_a_read_only_data_dir_fails_before_any_archive_is_read(
    tmp_path, read_only_disk, data_dir_name
):
  # Not a tar at all: reading it would fail otherwise.
  manual = manual_dir_holding(tmp_path, VAL_TAR, b'not a tar')
  data_dir = read_only_disk / data_dir_name
  what, fix = failed_build(
      manual, data_dir, build_lock.OutputNotWritableError, verify_checksums=False
  )
  where = data_dir if data_dir.exists() else read_only_disk
  assert what == (
      f'Cannot write the output to {data_dir}: creating a file in {where}'
      ' failed (Read-only file system).'
  )
  assert fix.endswith('or pass --data_dir=<a folder you can write>.')


@pytest.mark.parametrize('command', ['build-classic', 'export-tpu'])
def test_a_read_only_output_dir_fails_in_two_lines(
    tmp_path, read_only_disk, dummy_build, capsys, command
):
  out = read_only_disk / 'existing' / 'out'
  if command == 'build-classic':
    manual = manual_dir_holding(tmp_path, VAL_TAR, b'not a tar')
    argv = _build_classic_argv(manual, out, shards=2)
  else:
    argv = ['export-tpu', '--data_dir', str(dummy_build), '--output_dir', str(out)]
  assert cli.main(argv) == 1
  what, fix = cli_error(capsys, command)
  assert what == (
      f'Cannot write the output to {out}: creating a file in'
      f' {read_only_disk / "existing"} failed (Read-only file system).'
  )
  assert fix.endswith('or pass --output_dir=<a folder you can write>.')


def test_a_prepared_dataset_on_a_read_only_disk_still_loads(tmp_path, monkeypatch):
  monkeypatch.setattr(disk_space, '_MARGIN_BYTES', 0)
  with _tmpfs(tmp_path / 'disk', 'size=4m') as disk:
    manual = manual_dir_with(tmp_path, VAL_TAR)
    build(manual, disk / 'data')
    written = read_split(disk / 'data', 'validation')
    _read_only(disk)
    # tfds.load calls download_and_prepare, which reuses what is there.
    tfds.load(NAME, split='validation', data_dir=disk / 'data')
    assert read_split(disk / 'data', 'validation') == written
