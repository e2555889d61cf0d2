"""What is published, and when: a killed build leaves nothing a reader could take
for data, a complete version is reused, a forced rebuild replaces it."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

from imagenet2012_local.gate import disk_space
from tests import fake_archives
from tests.helpers import (
    NAME,
    VAL_TAR,
    build,
    fill_the_disk,
    manual_dir_holding,
    read_split,
    val_images,
)

_KILLED_BUILD = """
import sys
import imagenet2012_local
import tensorflow_datasets as tfds
builder = tfds.builder('imagenet2012_local', data_dir=sys.argv[2], verify_checksums=False)
print('ready', flush=True)
builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=sys.argv[1]))
print('done', flush=True)
"""


def _start_build(manual: Path, data_dir: Path) -> tuple[subprocess.Popen, float]:
  """A build in a new process, once TensorFlow is imported; and the start time."""
  process = subprocess.Popen(
      [sys.executable, '-c', _KILLED_BUILD, str(manual), str(data_dir)],
      stdout=subprocess.PIPE,
      stderr=subprocess.DEVNULL,
      text=True,
      cwd=Path(__file__).resolve().parent.parent,
  )
  assert 'ready\n' in iter(process.stdout.readline, '')
  return process, time.monotonic()


def test_a_killed_build_publishes_nothing_and_the_next_one_succeeds(tmp_path):
  images = val_images(200, size=320)  # About 4 MB.
  manual = manual_dir_holding(tmp_path, VAL_TAR, fake_archives.tar_bytes(images))
  data_dir = tmp_path / 'data'
  # How long the build itself takes here, in the same kind of process.
  process, started = _start_build(manual, tmp_path / 'timed')
  assert 'done\n' in iter(process.stdout.readline, '')  # TFDS prints too.
  seconds = time.monotonic() - started
  assert process.wait(timeout=60) == 0
  killed = []
  for delay in sorted(random.Random(6).uniform(0, 0.9 * seconds) for _ in range(4)):
    process, started = _start_build(manual, data_dir)
    time.sleep(max(0.0, started + delay - time.monotonic()))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    killed.append(process.returncode == -signal.SIGKILL)
    if tfds.builder(NAME, data_dir=data_dir).is_prepared():
      # Killed after TFDS renamed the finished version into place: complete.
      assert len(read_split(data_dir, 'validation')) == len(images)
      break
    with pytest.raises(Exception):  # Nothing a reader could take for data.
      tfds.load(NAME, split='validation', data_dir=data_dir)
  assert killed[0]
  build(manual, data_dir, verify_checksums=False)
  stored = read_split(data_dir, 'validation')
  assert {n: data for n, (_, data) in stored.items()} == dict(images)


def _built_once(tmp_path) -> Path:
  """The manual dir of a small validation archive, built once into tmp_path/data."""
  manual = manual_dir_holding(tmp_path, VAL_TAR, fake_archives.tar_bytes(val_images(4)))
  build(manual, tmp_path / 'data', verify_checksums=False)
  return manual


def test_a_complete_version_is_reused_not_rebuilt(tmp_path, monkeypatch):
  """TFDS's default: a complete version is never touched by a new build."""
  manual = _built_once(tmp_path)
  fill_the_disk(monkeypatch)
  build(manual, tmp_path / 'data', verify_checksums=False)  # Reuses it: nothing is written.
  assert len(read_split(tmp_path / 'data', 'validation')) == 4


def test_a_forced_rebuild_deletes_the_old_version_first(tmp_path, monkeypatch):
  """TFDS deletes the old version before a forced rebuild (documented)."""
  manual = _built_once(tmp_path)
  fill_the_disk(monkeypatch)
  builder = tfds.builder(NAME, data_dir=tmp_path / 'data', verify_checksums=False)
  with pytest.raises(disk_space.DiskSpaceError):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=manual,
            download_mode=tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS,
        )
    )
  assert not tfds.builder(NAME, data_dir=tmp_path / 'data').is_prepared()
