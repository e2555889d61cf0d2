"""Published folders and files get the umask's modes, like any the user makes
(not `tempfile.mkdtemp`'s 0700): another user, or a training job under
another uid, reads what the group or others may."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from imagenet2012_local.commands import classic_build
from imagenet2012_local.commands import tpu_export
from tests.helpers import DEVKIT, VAL_TAR, build, manual_dir_with


@pytest.fixture(params=[0o022, 0o027], ids=['umask022', 'umask027'])
def umask(request) -> int:
  """The process's umask for the test (worker processes inherit it)."""
  old = os.umask(request.param)
  yield request.param
  os.umask(old)


def _modes(folder: Path) -> dict[str, int]:
  """{path relative to `folder`: permission bits}, `folder` itself as '.'."""
  return {
      str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode)
      for path in [folder, *folder.rglob('*')]
  }


def _assert_follow(folder: Path, umask: int) -> None:
  """Folders 0777 and files 0666, less the umask, everywhere below `folder`."""
  modes = _modes(folder)
  expected = {
      name: (0o777 if (folder / name).is_dir() else 0o666) & ~umask
      for name in modes
  }
  assert {name: oct(mode) for name, mode in modes.items()} == {
      name: oct(mode) for name, mode in expected.items()
  }
  assert len(modes) > 2  # The folder, and what it holds.


def test_build_classic_output_follows_the_umask(tmp_path, umask):
  manual = manual_dir_with(tmp_path, VAL_TAR, DEVKIT)
  output_dir = tmp_path / 'out'
  classic_build.build(
      manual, output_dir, num_shards={'validation': 2}, dali_index=True
  )
  _assert_follow(output_dir, umask)


def test_build_classic_overwrite_follows_the_umask(tmp_path, umask):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  output_dir = tmp_path / 'out'
  output_dir.mkdir(mode=0o700)
  classic_build.build(
      manual, output_dir, num_shards={'validation': 2}, overwrite=True
  )
  _assert_follow(output_dir, umask)


def test_export_tpu_output_follows_the_umask(dummy_build, tmp_path, umask):
  output_dir = tmp_path / 'tpu'
  tpu_export.export(
      dummy_build,
      output_dir,
      splits=['validation'],
      num_shards={'validation': 2},
      dali_index=True,
  )
  _assert_follow(output_dir, umask)


def test_tfds_build_follows_the_umask(tmp_path, umask):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  data_dir = tmp_path / 'data'
  build(manual, data_dir)
  _assert_follow(data_dir / 'imagenet2012_local', umask)
