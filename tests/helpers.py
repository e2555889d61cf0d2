"""Helpers for the tests: small archives, builds, and what a build published."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

import imagenet2012_local  # noqa: F401  (registers the builder)
from imagenet2012_local.sources import archive_facts
from imagenet2012_local.engine import resume
from imagenet2012_local import settings
from imagenet2012_local.layouts import tfrecords
from tests import fake_archives

NAME = 'imagenet2012_local'
DUMMY_DIR = Path(__file__).resolve().parent.parent / 'dummy_data'
TRAIN_TAR = archive_facts.TRAIN.file_name
VAL_TAR = archive_facts.VALIDATION.file_name
TEST_TAR = archive_facts.TEST.file_name
DEVKIT = archive_facts.DEVKIT


def build(manual_dir: Path, data_dir: Path, name: str = NAME, **kwargs):
  """Builds `name` from the archives in `manual_dir`; returns the builder."""
  builder = tfds.builder(name, data_dir=data_dir, **kwargs)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
  )
  return builder


def two_lines(error: BaseException) -> tuple[str, str]:
  """The error's message as (what is wrong, what to do); fails unless it has two lines."""
  lines = str(error).splitlines()
  assert len(lines) == 2, str(error)
  return lines[0], lines[1]


def failed_build(
    manual_dir: Path, data_dir: Path, error_type: type[BaseException], **kwargs
) -> tuple[str, str]:
  """Builds expecting `error_type`, checks nothing was published nor left
  half-written (finished shards may be kept for a rerun); its two lines."""
  with pytest.raises(error_type) as raised:
    build(manual_dir, data_dir, **kwargs)
  assert not tfds.builder(NAME, data_dir=data_dir).is_prepared()
  assert not [
      path
      for path in data_dir.glob('**/*.tfrecord*')
      if not path.parent.name.endswith(resume.FOLDER_SUFFIX)
  ]
  assert not list(data_dir.glob('**/*.partial'))
  return two_lines(raised.value)


def made_up_build_fails(
    tmp_path: Path, archive_name: str, data: bytes, error_type: type[BaseException], **kwargs
) -> tuple[str, str]:
  """`failed_build` of a manual dir holding `data` as `archive_name`, gate off
  (no checksum table knows a made-up archive)."""
  manual = manual_dir_holding(tmp_path, archive_name, data)
  return failed_build(
      manual, tmp_path / 'data', error_type, verify_checksums=False, **kwargs
  )


def read_split(data_dir: Path, split: str, name: str = NAME):
  """{file_name: (label, stored image bytes)} of a built split, via tfds.load."""
  ds = tfds.load(
      name,
      split=split,
      data_dir=data_dir,
      decoders={'image': tfds.decode.SkipDecoding()},
  )
  return {
      ex['file_name'].decode(): (int(ex['label']), ex['image'])
      for ex in tfds.as_numpy(ds)
  }


def metadata(data_dir: Path) -> dict:
  """The published version's metadata.json (fixed, skipped images; archives...)."""
  return json.loads(next(data_dir.glob(f'{NAME}/*/metadata.json')).read_text())


def tar_images(path: Path) -> dict[str, tuple[str | None, bytes]]:
  """{file_name: (inner tar wnid or None, bytes)} read with plain tarfile."""
  images = {}
  with tarfile.open(path) as tar:
    for member in tar.getmembers():
      data = tar.extractfile(member).read()
      if path.name == TRAIN_TAR:
        with tarfile.open(fileobj=io.BytesIO(data)) as inner:
          for image in inner.getmembers():
            wnid = member.name.removesuffix('.tar')
            images[image.name] = (wnid, inner.extractfile(image).read())
      else:
        images[member.name] = (None, data)
  return images


def tar_members(data: bytes) -> list[tarfile.TarInfo]:
  """The members of the tar `data`, with their offsets, read by tarfile."""
  with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    return tar.getmembers()


def val_images(count: int, size: int = 32, seed: int = 0) -> list[tuple[str, bytes]]:
  """(ILSVRC2012_val_<n>.JPEG, a random JPEG) for n = 1 to `count`."""
  rng = np.random.default_rng(seed)
  return [
      (f'ILSVRC2012_val_{i:08d}.JPEG', fake_archives.encode_image(rng, size, size))
      for i in range(1, count + 1)
  ]


def manual_dir_with(tmp_path: Path, *names: str) -> Path:
  """A manual dir holding copies of the named dummy archives."""
  manual = tmp_path / 'manual'
  manual.mkdir()
  for name in names:
    shutil.copy(DUMMY_DIR / name, manual / name)
  return manual


def manual_dir_holding(tmp_path: Path, name: str, data: bytes) -> Path:
  """A manual dir holding one archive, `name`, whose bytes are `data`."""
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / name).write_bytes(data)
  return manual


def fill_the_disk(monkeypatch: pytest.MonkeyPatch) -> None:
  """Every shard write fails as on a full disk (ENOSPC); the build runs in
  one process, so that the patch applies where shards are written."""
  monkeypatch.setenv(settings.WORKERS_ENV_VAR, '1')

  def write(self, record):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(tfrecords.Writer, 'write', write)


def count_archive_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
  """Records the path of every read of an archive in order
  (`direct_reads.pieces`: the digest's, the in-order index's and writing's)."""
  from imagenet2012_local.sources import direct_reads  # pylint: disable=g-import-not-at-top

  read = []
  pieces = direct_reads.pieces

  def recorded(path, *args, **kwargs):
    read.append(os.path.basename(os.fspath(path)))
    return pieces(path, *args, **kwargs)

  monkeypatch.setattr(direct_reads, 'pieces', recorded)
  return read


def kill_once_shards_are_kept(command: str, manual: Path, output_dir: Path, *flags: str) -> int:
  """Runs `imagenet2012-local <command>` as its console script does, with the
  gate off and 100 validation shards, each recorded as it is finished, and
  kills it (SIGKILL) once a first shard is kept; the number of shards kept."""
  kept = Path(f'{output_dir}{resume.FOLDER_SUFFIX}')
  process = subprocess.Popen(
      [sys.executable, '-m', 'imagenet2012_local.commands.cli', command,
       '--manual_dir', str(manual), '--output_dir', str(output_dir),
       '--no_verify', '--validation_shards', '100', *flags],
      cwd=DUMMY_DIR.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
      env={
          **os.environ,
          settings.READS_IN_FLIGHT_ENV_VAR: '1',
          settings.SYNC_EVERY_MB_ENV_VAR: '0',  # Record each tiny shard.
      },
  )
  deadline = time.monotonic() + 60
  while not list(kept.glob('*.kept.json')):
    assert process.poll() is None and time.monotonic() < deadline
    time.sleep(0.002)
  process.send_signal(signal.SIGKILL)  # Some shards written, not all.
  assert process.wait(timeout=60) == -signal.SIGKILL
  assert not output_dir.exists()
  return len(list(kept.glob('*.kept.json')))
