"""Issue 6: bad archives, bad images and interrupted builds never give a wrong dataset.

Every damaged input fails the build with a message that names the archive, the
member and the byte, and publishes nothing; both build paths (the fast sharded
one and TFDS's standard one) are checked where they read archives differently.
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from imagenet2012_local import disk_space
from imagenet2012_local import fake_archives
from imagenet2012_local import image_fixes
from imagenet2012_local import labels
from imagenet2012_local import plan
from imagenet2012_local import settings
from imagenet2012_local import tar_reader
from imagenet2012_local import tfrecords
from imagenet2012_local import verification
from tests.helpers import TRAIN_TAR, VAL_TAR, build, manual_dir_with, read_split

NAME = 'imagenet2012_local'
PATHS = ['fast', 'standard']


def _val_images(count: int, size: int = 32, seed: int = 0) -> list[tuple[str, bytes]]:
  rng = np.random.default_rng(seed)
  return [
      (f'ILSVRC2012_val_{i:08d}.JPEG', fake_archives.encode_image(rng, size, size))
      for i in range(1, count + 1)
  ]


def _manual(tmp_path: Path, name: str, data: bytes) -> Path:
  manual = tmp_path / 'manual'
  manual.mkdir(exist_ok=True)
  (manual / name).write_bytes(data)
  return manual


def _build(manual: Path, data_dir: Path, path: str = 'fast', **kwargs):
  """Builds with the gate off (made-up archives); `path` picks the build path."""
  builder = tfds.builder(NAME, data_dir=data_dir, verify_checksums=False, **kwargs)
  config = tfds.download.DownloadConfig(
      manual_dir=manual,
      max_examples_per_split=10**6 if path == 'standard' else None,
  )
  builder.download_and_prepare(download_config=config)
  return builder


def _fails(manual: Path, data_dir: Path, error, path: str = 'fast', **kwargs) -> str:
  """Builds, expects `error`, checks nothing was published; the message."""
  with pytest.raises(error) as raised:
    _build(manual, data_dir, path, **kwargs)
  assert not tfds.builder(NAME, data_dir=data_dir).is_prepared()
  assert not list(data_dir.glob('**/*.tfrecord*'))
  message = str(raised.value)
  assert len(message.splitlines()) == 2, message
  return message


def _metadata(data_dir: Path) -> dict:
  return json.loads(next(data_dir.glob(f'{NAME}/*/metadata.json')).read_text())


def _members(data: bytes) -> list[tarfile.TarInfo]:
  with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    return tar.getmembers()


# Truncated, corrupt or foreign archives (gate off: with it on, the known size
# of an official archive already catches a truncated one).


@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize(
    'where, expected',
    [
        ('between', 'ends at byte {cut:,}, after member {prev!r}, without the'),
        ('in_data', 'member {this!r} (bytes {data:,} to'),
        ('in_header', 'is {cut:,} bytes, not a multiple of 512'),
    ],
)
def test_truncated_archive_names_member_and_byte(tmp_path, path, where, expected):
  data = fake_archives.tar_bytes(_val_images(6))
  members = _members(data)
  this, prev = members[3], members[2]
  cut = {
      'between': this.offset,  # tarfile alone would just see 3 images.
      'in_data': this.offset_data + 512,
      'in_header': this.offset + 100,
  }[where]
  manual = _manual(tmp_path, VAL_TAR, data[:cut])
  message = _fails(manual, tmp_path / 'data', tar_reader.ArchiveError, path)
  assert VAL_TAR in message
  assert expected.format(
      cut=cut, prev=prev.name, this=this.name, data=this.offset_data
  ) in message
  assert 'Download ILSVRC2012_img_val.tar again' in message.splitlines()[1]


@pytest.mark.parametrize('path', PATHS)
def test_corrupt_header_is_not_a_silent_end(tmp_path, path):
  data = bytearray(fake_archives.tar_bytes(_val_images(6)))
  header = _members(bytes(data))[4].offset
  data[header + 10] ^= 0xFF  # Bad checksum: tarfile would stop without a word.
  manual = _manual(tmp_path, VAL_TAR, bytes(data))
  message = _fails(manual, tmp_path / 'data', tar_reader.ArchiveError, path)
  assert f'unreadable tar header at byte {header:,}' in message
  assert "after member 'ILSVRC2012_val_00000004.JPEG'" in message


@pytest.mark.parametrize('path', PATHS)
def test_zero_block_inside_the_archive_is_caught(tmp_path, path):
  """E.g. a preallocated download that stopped: zeros where data should be."""
  data = fake_archives.tar_bytes(_val_images(6))
  header = _members(data)[2].offset
  manual = _manual(tmp_path, VAL_TAR, data[:header] + bytes(100 << 10))
  message = _fails(manual, tmp_path / 'data', tar_reader.ArchiveError, path)
  assert f'a zero block at byte {header:,}, after member' in message
  assert f'ends the member list, yet {100 << 10:,} bytes follow' in message


def _train_tar(tmp_path: Path, classes: int = 3, per_class: int = 3) -> bytes:
  """A small ILSVRC2012_img_train.tar (first wnids of the class list)."""
  rng = np.random.default_rng(1)
  images = {
      wnid: [
          (f'{wnid}_{i}.JPEG', fake_archives.encode_image(rng, 32, 32))
          for i in range(per_class)
      ]
      for wnid in labels.class_names_file().read_text().split()[:classes]
  }
  path = tmp_path / 'train.tar'
  fake_archives.write_train_tar(path, images, seed=0)
  return path.read_bytes()


@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize('damage', ['header', 'garbage'])
def test_damaged_inner_train_tar_is_named(tmp_path, path, damage):
  data = bytearray(_train_tar(tmp_path))
  inner = _members(bytes(data))[1]
  start = inner.offset_data
  if damage == 'header':  # The second image's header of the inner tar.
    second = _members(bytes(data[start : start + inner.size]))[1].offset
    data[start + second + 10] ^= 0xFF
    expected = f'unreadable tar header at byte {start + second:,}'
  else:
    data[start : start + 512] = b'not a tar'.ljust(512, b'!')
    expected = f'not a tar archive: no valid tar header at byte {start:,}'
  manual = _manual(tmp_path, TRAIN_TAR, bytes(data))
  message = _fails(manual, tmp_path / 'data', tar_reader.ArchiveError, path)
  assert f'{TRAIN_TAR}/{inner.name}: ' in message
  assert expected in message


@pytest.mark.parametrize('path', PATHS)
def test_truncated_inner_train_tar_is_named(tmp_path, path):
  """An inner tar whose last image runs past its end (its size field lies)."""
  rng = np.random.default_rng(2)
  wnid = labels.class_names_file().read_text().split()[0]
  inner = fake_archives.tar_bytes(
      [(f'{wnid}_{i}.JPEG', fake_archives.encode_image(rng, 32, 32)) for i in range(3)]
  )
  last = _members(inner)[-1]
  cut = last.offset_data + 512  # Inside the last image; a multiple of 512.
  outer = fake_archives.tar_bytes([(f'{wnid}.tar', inner[:cut])])
  manual = _manual(tmp_path, TRAIN_TAR, outer)
  message = _fails(manual, tmp_path / 'data', tar_reader.ArchiveError, path)
  assert f'{TRAIN_TAR}/{wnid}.tar: member {last.name!r}' in message
  assert 'is cut off' in message


@pytest.mark.parametrize('padded', [False, True])
def test_html_page_saved_as_the_archive(tmp_path, padded):
  page = b'<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>\n'
  manual = _manual(tmp_path, VAL_TAR, page.ljust(1024) if padded else page)
  message = _fails(manual, tmp_path / 'data', tar_reader.ArchiveError)
  first = message.splitlines()[0]
  assert VAL_TAR in first and 'it is an HTML page' in first
  assert 'byte 0' in first if padded else 'not a multiple of 512' in first


def test_garbage_named_like_an_archive(tmp_path):
  noise = np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)
  manual = _manual(tmp_path, VAL_TAR, noise.tobytes())
  message = _fails(manual, tmp_path / 'data', tar_reader.ArchiveError)
  assert f'{VAL_TAR}: not a tar archive: no valid tar header at byte 0' in message


def test_the_gate_catches_a_truncated_official_archive_by_size(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  data = (manual / VAL_TAR).read_bytes()
  (manual / VAL_TAR).write_bytes(data[:-1024])
  with pytest.raises(verification.ChecksumError, match='bytes; expected 30,720'):
    build(manual, tmp_path / 'data')


def test_the_wrong_archive_under_a_split_name(tmp_path):
  manual = _manual(tmp_path, TRAIN_TAR, fake_archives.tar_bytes(_val_images(2)))
  message = _fails(manual, tmp_path / 'data', tar_reader.ArchiveError)
  assert "member 'ILSVRC2012_val_00000001.JPEG' (header at byte 0)" in message
  assert 'is not a file named like <wnid>.tar' in message


def test_an_archive_without_images(tmp_path):
  manual = _manual(tmp_path, VAL_TAR, bytes(10240))  # An empty tar.
  message = _fails(manual, tmp_path / 'data', tar_reader.ArchiveError)
  assert 'holds no image named like ILSVRC2012_val_<8 digits>.JPEG' in message


# Members that are not images.


def _tar_with_extras(images, extras) -> bytes:
  """A tar of `images`, then `extras`: (name, type, data or link target)."""
  out = io.BytesIO()
  with tarfile.open(fileobj=out, mode='w', format=tarfile.GNU_FORMAT) as tar:
    for name, data in images:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
    for name, kind, payload in extras:
      info = tarfile.TarInfo(name)
      info.type = kind
      if kind == tarfile.REGTYPE:
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
      else:
        info.linkname = payload.decode()
        tar.addfile(info)
  return out.getvalue()


@pytest.mark.parametrize('path', PATHS)
def test_non_image_members_are_skipped_and_recorded(tmp_path, path):
  images = _val_images(3)
  extras = [
      ('ILSVRC2012_val_00000009.JPEG', tarfile.SYMTYPE, b'/etc/passwd'),
      ('ILSVRC2012_val_00000008.JPEG', tarfile.LNKTYPE, images[0][0].encode()),
      ('../escape', tarfile.DIRTYPE, b''),
      ('.DS_Store', tarfile.REGTYPE, b'\0\0\0\1Bud1'),
      ('._ILSVRC2012_val_00000001.JPEG', tarfile.REGTYPE, b'AppleDouble'),
      ('dir/.hidden', tarfile.REGTYPE, b'x'),
  ]
  manual = _manual(tmp_path, VAL_TAR, _tar_with_extras(images, extras))
  _build(manual, tmp_path / 'data', path)
  stored = read_split(tmp_path / 'data', 'validation')
  assert {n: data for n, (_, data) in stored.items()} == dict(images)
  assert _metadata(tmp_path / 'data')['skipped_members']['validation'] == {
      'ILSVRC2012_val_00000009.JPEG': 'a symbolic link',
      'ILSVRC2012_val_00000008.JPEG': 'a hard link',
      '../escape': 'a directory',
      '.DS_Store': 'a hidden file',
      '._ILSVRC2012_val_00000001.JPEG': 'a hidden file',
      'dir/.hidden': 'a hidden file',
  }
  assert not (tmp_path / 'escape').exists()


def test_non_image_members_of_inner_train_tars_are_recorded(tmp_path):
  wnid = labels.class_names_file().read_text().split()[0]
  image = fake_archives.encode_image(np.random.default_rng(4), 32, 32)
  inner = fake_archives.tar_bytes([(f'{wnid}_1.JPEG', image), ('.DS_Store', b'x')])
  outer = _tar_with_extras(
      [(f'{wnid}.tar', inner)], [('._n01440764.tar', tarfile.REGTYPE, b'x')]
  )
  manual = _manual(tmp_path, TRAIN_TAR, outer)
  _build(manual, tmp_path / 'data')
  assert _metadata(tmp_path / 'data')['skipped_members']['train'] == {
      '._n01440764.tar': 'a hidden file',
      f'{wnid}.tar/.DS_Store': 'a hidden file',
  }
  assert set(read_split(tmp_path / 'data', 'train')) == {f'{wnid}_1.JPEG'}


@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize(
    'name',
    [
        '../ILSVRC2012_val_00000005.JPEG',
        '/tmp/ILSVRC2012_val_00000005.JPEG',
        'val/ILSVRC2012_val_00000005.JPEG',
        'README.txt',
        'ILSVRC2012_val_5.JPEG',
        'ILSVRC2012_test_00000005.JPEG',
    ],
)
def test_other_names_fail_instead_of_being_used(tmp_path, path, name):
  images = _val_images(4)
  data = fake_archives.tar_bytes(images + [(name, images[0][1])])
  offset = _members(data)[-1].offset
  manual = _manual(tmp_path, VAL_TAR, data)
  message = _fails(manual, tmp_path / 'data', tar_reader.ArchiveError, path)
  assert f'member {name!r} (header at byte {offset:,}) is not a file named like' in message
  assert 'ILSVRC2012_val_<8 digits>.JPEG' in message
  assert 'at the top level (no folders)' in message.splitlines()[1]


# Images no decoder reads.


def _bad_images() -> dict[str, bytes]:
  good = fake_archives.encode_image(np.random.default_rng(5), 48, 48)
  return {
      'ILSVRC2012_val_00000002.JPEG': good[: len(good) // 2],  # Cut off.
      'ILSVRC2012_val_00000004.JPEG': b'<html>404 Not Found</html>',
  }


def _with_bad_images(tmp_path) -> tuple[Path, dict[str, bytes]]:
  images = dict(_val_images(6))
  images.update(_bad_images())
  return _manual(tmp_path, VAL_TAR, fake_archives.tar_bytes(images.items())), images


@pytest.mark.parametrize('path', PATHS)
def test_an_undecodable_image_fails_with_its_name(tmp_path, path):
  manual, _ = _with_bad_images(tmp_path)
  message = _fails(manual, tmp_path / 'data', image_fixes.UndecodableImageError, path)
  first, second = message.splitlines()
  assert VAL_TAR in first
  assert 'ILSVRC2012_val_00000002.JPEG' in first or 'ILSVRC2012_val_00000004.JPEG' in first
  assert settings.SKIP_BAD_IMAGES_ENV_VAR in second


@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize('how', ['argument', 'environment'])
def test_skip_bad_images_leaves_them_out_and_records_them(tmp_path, monkeypatch, path, how):
  manual, images = _with_bad_images(tmp_path)
  if how == 'environment':
    monkeypatch.setenv(settings.SKIP_BAD_IMAGES_ENV_VAR, '1')
    builder = _build(manual, tmp_path / 'data', path)
  else:
    builder = _build(manual, tmp_path / 'data', path, skip_bad_images=True)
  bad = _bad_images()
  stored = read_split(tmp_path / 'data', 'validation')
  assert set(stored) == set(images) - set(bad)
  skipped = _metadata(tmp_path / 'data')['skipped_images']['validation']
  assert set(skipped) == set(bad)
  assert 'truncated' in skipped['ILSVRC2012_val_00000002.JPEG']
  # Split info counts what was written, shard by shard.
  info = tfds.builder(NAME, data_dir=tmp_path / 'data').info
  assert sum(info.splits['validation'].shard_lengths) == len(stored) == 4
  assert builder.info.splits['validation'].num_examples == 4


def test_cut_off_jpeg_is_checked_cheaply_and_exactly():
  good = fake_archives.encode_image(np.random.default_rng(6), 48, 48)
  assert image_fixes.fix_image(good + b'\0' * 7) == (good + b'\0' * 7, None)
  assert image_fixes.fix_image(good + b'trailer') == (good + b'trailer', None)
  for cut in (good[:-2], good[: len(good) // 2]):
    with pytest.raises(image_fixes.UndecodableImageError, match='truncated'):
      image_fixes.fix_image(cut)


# Duplicates and validation names (end to end from real tars).


def test_duplicate_file_names_in_a_tar_are_an_error(tmp_path):
  images = _val_images(3)
  manual = _manual(tmp_path, VAL_TAR, fake_archives.tar_bytes(images + images[1:2]))
  message = _fails(manual, tmp_path / 'data', plan.DuplicateImagesError)
  assert 'holds 1 file names more than once, e.g. ILSVRC2012_val_00000002.JPEG' in message


@pytest.mark.parametrize('number', [0, 50_001])
def test_validation_number_without_a_label_is_an_error(tmp_path, number):
  images = _val_images(2)
  name = f'ILSVRC2012_val_{number:08d}.JPEG'
  manual = _manual(
      tmp_path, VAL_TAR, fake_archives.tar_bytes(images + [(name, images[0][1])])
  )
  message = _fails(manual, tmp_path / 'data', labels.LabelError)
  assert f'{name} has no label' in message
  assert 'labels images 1 to 50,000' in message


# Interrupted builds.

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
  images = _val_images(200, size=320)  # About 4 MB.
  manual = _manual(tmp_path, VAL_TAR, fake_archives.tar_bytes(images))
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
  _build(manual, data_dir)
  stored = read_split(data_dir, 'validation')
  assert {n: data for n, (_, data) in stored.items()} == dict(images)


# Reproducibility.


def test_two_builds_give_identical_shards_and_metadata(tmp_path):
  manual, _ = _with_bad_images(tmp_path)
  for name in ('first', 'second'):
    _build(manual, tmp_path / name, skip_bad_images=True)
  files = [
      {
          f.name: f.read_bytes()
          for f in next((tmp_path / name).glob(f'{NAME}/*')).iterdir()
          if f.name != 'build_stats.json'  # It holds the build's duration.
      }
      for name in ('first', 'second')
  ]
  assert files[0] == files[1]
  assert {'dataset_info.json', 'metadata.json'} <= files[0].keys()
  assert json.loads(files[0]['metadata.json'])['skipped_images']['validation']


# A full disk.


def _disk_full(monkeypatch) -> None:
  def write(self, record):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(tfrecords.Writer, 'write', write)


def test_a_full_disk_fails_clearly_and_publishes_nothing(tmp_path, monkeypatch):
  manual = _manual(tmp_path, VAL_TAR, fake_archives.tar_bytes(_val_images(4)))
  _disk_full(monkeypatch)
  message = _fails(manual, tmp_path / 'data', disk_space.DiskSpaceError)
  first, second = message.splitlines()
  assert 'The disk filled up while writing' in first
  assert 'No space left on device' in first and 'nothing was published' in first
  assert '--data_dir' in second
  assert not list((tmp_path / 'data').glob(f'{NAME}/incomplete*'))


def test_a_complete_version_is_reused_not_rebuilt(tmp_path, monkeypatch):
  """TFDS's default: a complete version is never touched by a new build."""
  manual = _manual(tmp_path, VAL_TAR, fake_archives.tar_bytes(_val_images(4)))
  _build(manual, tmp_path / 'data')
  _disk_full(monkeypatch)
  _build(manual, tmp_path / 'data')  # Reuses it: nothing is written.
  assert len(read_split(tmp_path / 'data', 'validation')) == 4


def test_a_forced_rebuild_deletes_the_old_version_first(tmp_path, monkeypatch):
  """TFDS deletes the old version before a forced rebuild (documented)."""
  manual = _manual(tmp_path, VAL_TAR, fake_archives.tar_bytes(_val_images(4)))
  _build(manual, tmp_path / 'data')
  _disk_full(monkeypatch)
  builder = tfds.builder(NAME, data_dir=tmp_path / 'data', verify_checksums=False)
  with pytest.raises(disk_space.DiskSpaceError):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=manual,
            download_mode=tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS,
        )
    )
  assert not tfds.builder(NAME, data_dir=tmp_path / 'data').is_prepared()


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
  small = _manual(tmp_path, VAL_TAR, fake_archives.tar_bytes(_val_images(4)))
  # Without the margin the early check lets a build start that cannot fit.
  monkeypatch.setattr(disk_space, '_MARGIN_BYTES', 0)
  _build(small, small_disk / 'old')
  big = tmp_path / 'big'
  big.mkdir()
  data = fake_archives.tar_bytes(_val_images(40, size=256))
  (big / VAL_TAR).write_bytes(data)
  free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
  assert free > len(data)
  ballast = small_disk / 'ballast'  # Leaves room for about half the output.
  ballast.write_bytes(bytes(free - len(data) // 2 - (1 << 16)))
  monkeypatch.setattr(disk_space, 'check_free_space', lambda *_: None)
  message = _fails(big, small_disk / 'new', disk_space.DiskSpaceError)
  assert 'No space left on device' in message
  assert not list((small_disk / 'new').glob(f'{NAME}/incomplete*'))
  assert len(read_split(small_disk / 'old', 'validation')) == 4
