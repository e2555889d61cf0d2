"""Disk space: too little is found before starting; a disk that fills up while
writing fails clearly, publishes nothing and leaves other versions alone."""

from __future__ import annotations

import collections
import os
import subprocess

import pytest

from imagenet2012_local.gate import disk_space
from tests import fake_archives
from tests.helpers import (
    NAME,
    VAL_TAR,
    build,
    failed_build,
    fill_the_disk,
    made_up_build_fails,
    manual_dir_holding,
    manual_dir_with,
    read_split,
    val_images,
)

_Usage = collections.namedtuple('_Usage', 'total used free')


def test_not_enough_disk_space_is_found_before_starting(tmp_path, monkeypatch):
  monkeypatch.setattr(
      disk_space.shutil, 'disk_usage', lambda _: _Usage(10**9, 10**9, 5_000_000)
  )
  manual = manual_dir_with(tmp_path, VAL_TAR)
  what, fix = failed_build(manual, tmp_path / 'data', disk_space.DiskSpaceError)
  assert f'Not enough free disk space under {tmp_path / "data"}' in what
  assert 'needs about 67.1 MB (the archives take 0.0 MB), and 5.0 MB are free' in what
  assert 'Free up space' in fix and '--data_dir' in fix
  assert '--output_dir=<folder> for `imagenet2012-local build-classic`' in fix


def test_a_full_disk_fails_clearly_and_publishes_nothing(tmp_path, monkeypatch):
  fill_the_disk(monkeypatch)
  data = fake_archives.tar_bytes(val_images(4))
  what, fix = made_up_build_fails(tmp_path, VAL_TAR, data, disk_space.DiskSpaceError)
  assert 'The disk filled up while writing' in what
  assert 'No space left on device' in what and 'nothing was published' in what
  assert f'Free up space under {tmp_path / "data" / NAME}' in fix
  assert '--data_dir' in fix and '--output_dir' in fix
  assert not list((tmp_path / 'data').glob(f'{NAME}/incomplete*'))


@pytest.fixture
def small_disk(tmp_path):
  """A 3 MB tmpfs, where mounting one is allowed (root); else the test skips."""
  mount_point = tmp_path / 'small_disk'
  mount_point.mkdir()
  mounted = subprocess.run(
      ['mount', '-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', str(mount_point)],
      capture_output=True,
      check=False,
  )
  if mounted.returncode:
    pytest.skip('cannot mount a tmpfs here')
  yield mount_point
  subprocess.run(['umount', str(mount_point)], check=True)


def test_a_really_full_disk_keeps_other_versions(tmp_path, small_disk, monkeypatch):
  small = manual_dir_holding(tmp_path, VAL_TAR, fake_archives.tar_bytes(val_images(4)))
  # Without the margin the early check lets a build start that cannot fit.
  monkeypatch.setattr(disk_space, '_MARGIN_BYTES', 0)
  build(small, small_disk / 'old', verify_checksums=False)
  big = tmp_path / 'big'
  big.mkdir()
  data = fake_archives.tar_bytes(val_images(40, size=256))
  (big / VAL_TAR).write_bytes(data)
  free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
  assert free > len(data)
  ballast = small_disk / 'ballast'  # Leaves room for about half the output.
  ballast.write_bytes(bytes(free - len(data) // 2 - (1 << 16)))
  monkeypatch.setattr(disk_space, 'check_free_space', lambda *_: None)
  what, _ = failed_build(
      big, small_disk / 'new', disk_space.DiskSpaceError, verify_checksums=False
  )
  assert 'No space left on device' in what
  assert not list((small_disk / 'new').glob(f'{NAME}/incomplete*'))
  assert len(read_split(small_disk / 'old', 'validation')) == 4
