"""Issue 7: every error a user can hit says what is wrong, then what to do.

One test per message: exactly two lines, the first naming the problem (and the
file, member or folder it is about), the second the way out.
"""

from __future__ import annotations

import collections
import errno
import gzip
import io
import os
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from imagenet2012_local import archive_facts
from imagenet2012_local import image_reads
from imagenet2012_local import checksum_tables
from imagenet2012_local import disk_space
from imagenet2012_local import fake_archives
from imagenet2012_local import image_fixes
from imagenet2012_local import labels
from imagenet2012_local import plan
from imagenet2012_local import settings
from imagenet2012_local import tar_reader
from imagenet2012_local import tfrecords
from imagenet2012_local import verification
from imagenet2012_local.imagenet2012_local_dataset_builder import Builder
from imagenet2012_local.imagenet2012_local_dataset_builder import MissingArchivesError
from tests.helpers import DEVKIT, VAL_TAR, build, manual_dir_with

NAME = 'imagenet2012_local'
SHIPPED_VAL_WNIDS = labels.tfds_validation_labels().wnids


def _lines(error: pytest.ExceptionInfo) -> tuple[str, str]:
  """The message's two lines (fails unless there are exactly two)."""
  lines = str(error.value).splitlines()
  assert len(lines) == 2, str(error.value)
  return lines[0], lines[1]


def _images(count: int) -> list[tuple[str, bytes]]:
  rng = np.random.default_rng(0)
  return [
      (f'ILSVRC2012_val_{i:08d}.JPEG', fake_archives.encode_image(rng, 32, 32))
      for i in range(1, count + 1)
  ]


def _val_manual(tmp_path, data: bytes):
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / VAL_TAR).write_bytes(data)
  return manual


def _build_error(manual, tmp_path, error_type, **kwargs) -> tuple[str, str]:
  with pytest.raises(error_type) as error:
    build(manual, tmp_path / 'data', verify_checksums=False, **kwargs)
  return _lines(error)


# The manual dir.


def test_no_archives_in_the_manual_dir(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / 'notes.txt').write_text('not an archive')
  with pytest.raises(MissingArchivesError) as error:
    build(manual, tmp_path / 'data')
  what, fix = _lines(error)
  assert f'No ImageNet 2012 archive in {manual}' in what and VAL_TAR in what
  assert 'image-net.org' in fix and '--manual_dir' in fix


@pytest.mark.parametrize('exists', [False, True])
def test_a_manual_dir_that_is_missing_or_empty(tmp_path, exists):
  """TFDS checks the folder first; its page of instructions stays the cause."""
  manual = tmp_path / 'typo'
  if exists:
    manual.mkdir()
  with pytest.raises(MissingArchivesError) as error:
    build(manual, tmp_path / 'data')
  what, fix = _lines(error)
  assert f'{manual} does not exist or is empty' in what
  assert '--manual_dir' in fix
  tfds_message = str(error.value.__cause__)
  assert 'does not exist or is empty' in tfds_message
  assert 'ILSVRC2012_img_train.tar  (138 GiB, train)' in tfds_message
  assert Builder.MANUAL_DOWNLOAD_INSTRUCTIONS.split('\n')[0].strip() in tfds_message


# Checksums.


def test_wrong_size(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  with open(manual / VAL_TAR, 'ab') as f:
    f.write(b'\0' * 512)
  with pytest.raises(verification.ChecksumError) as error:
    build(manual, tmp_path / 'data')
  what, fix = _lines(error)
  assert 'is 31,232 bytes; expected 30,720' in what
  assert 'Re-download it' in fix and settings.VERIFY_ENV_VAR in fix


def test_wrong_md5(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  data = bytearray((manual / VAL_TAR).read_bytes())
  data[len(data) // 2] ^= 0xFF
  (manual / VAL_TAR).write_bytes(bytes(data))
  with pytest.raises(verification.ChecksumError) as error:
    build(manual, tmp_path / 'data')
  what, fix = _lines(error)
  assert VAL_TAR in what and 'Nothing was published' in what
  assert any(f'has {name} ' in what for name in checksum_tables.DIGEST_NAMES.values())
  assert 'Re-download it' in fix and settings.VERIFY_ENV_VAR in fix


def test_a_setting_that_is_neither_on_nor_off(monkeypatch):
  monkeypatch.setenv(settings.VERIFY_ENV_VAR, 'maybe')
  with pytest.raises(ValueError) as error:
    tfds.builder(NAME)
  what, fix = _lines(error)
  assert f"{settings.VERIFY_ENV_VAR}='maybe' is neither on nor off" in what
  assert '1 (on) or 0 (off)' in fix


# Damaged archives (each case end to end in test_reliability.py).


def _archive_error(tmp_path, data: bytes) -> tuple[str, str]:
  return _build_error(_val_manual(tmp_path, data), tmp_path, tar_reader.ArchiveError)


def _download_again(fix: str) -> None:
  assert f'Download {VAL_TAR} again from {archive_facts.DOWNLOAD_PAGE}' in fix


def test_archive_size_not_a_whole_number_of_blocks(tmp_path):
  what, fix = _archive_error(tmp_path, fake_archives.tar_bytes(_images(2))[:-100])
  assert f'{VAL_TAR} is 10,140 bytes, not a multiple of 512' in what
  _download_again(fix)


def test_not_a_tar_archive(tmp_path):
  what, fix = _archive_error(tmp_path, b'<html><body>Forbidden</body></html>'.ljust(512))
  assert f'{VAL_TAR}: not a tar archive (it is an HTML page' in what
  assert 'no valid tar header at byte 0' in what
  _download_again(fix)


def _second_member(data: bytes) -> tarfile.TarInfo:
  with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    return tar.getmembers()[1]


def test_archive_cut_inside_a_member(tmp_path):
  data = fake_archives.tar_bytes(_images(3))
  cut = _second_member(data).offset_data + 512
  what, fix = _archive_error(tmp_path, data[:cut])
  assert "member 'ILSVRC2012_val_00000002.JPEG' (bytes" in what
  assert f'is cut off: the tar ends at byte {cut:,}' in what
  _download_again(fix)


def test_archive_cut_between_members(tmp_path):
  data = fake_archives.tar_bytes(_images(3))
  cut = _second_member(data).offset
  what, fix = _archive_error(tmp_path, data[:cut])
  assert f"ends at byte {cut:,}, after member 'ILSVRC2012_val_00000001.JPEG'" in what
  assert 'without the end-of-archive marker' in what
  _download_again(fix)


def test_unreadable_header(tmp_path):
  data = bytearray(fake_archives.tar_bytes(_images(3)))
  header = _second_member(bytes(data)).offset
  data[header + 10] ^= 0xFF
  what, fix = _archive_error(tmp_path, bytes(data))
  assert f'unreadable tar header at byte {header:,}' in what
  _download_again(fix)


def test_zero_block_before_the_end(tmp_path):
  data = fake_archives.tar_bytes(_images(3))
  header = _second_member(data).offset
  what, fix = _archive_error(tmp_path, data[:header] + bytes(1 << 17))
  assert f'a zero block at byte {header:,}' in what and 'bytes follow' in what
  _download_again(fix)


def test_member_with_another_name(tmp_path):
  images = _images(2)
  what, fix = _archive_error(
      tmp_path, fake_archives.tar_bytes(images + [('val/x.JPEG', images[0][1])])
  )
  assert "member 'val/x.JPEG'" in what and 'is not a file named like' in what
  assert f'Use the official {VAL_TAR}' in fix and 'no folders' in fix


def test_archive_without_images(tmp_path):
  what, fix = _archive_error(tmp_path, bytes(10240))
  assert 'holds no image named like ILSVRC2012_val_<8 digits>.JPEG' in what
  assert f'Put the official {VAL_TAR}' in fix


def test_image_cut_off_when_read_by_offset(tmp_path):
  """The archive shrank after it was indexed."""
  path = tmp_path / VAL_TAR
  path.write_bytes(b'x' * 1000)
  image = ('ILSVRC2012_val_00000001.JPEG', 512, 1024)
  with pytest.raises(tar_reader.ArchiveError) as error:
    list(image_reads.read_images(path, [image]))
  what, fix = _lines(error)
  assert 'image ILSVRC2012_val_00000001.JPEG (bytes 512 to 1,536) is cut off' in what
  assert 'the file ends at byte 1,000' in what
  _download_again(fix)


# Images, names and labels.


def test_undecodable_image(tmp_path):
  images = _images(2) + [('ILSVRC2012_val_00000003.JPEG', b'not an image')]
  manual = _val_manual(tmp_path, fake_archives.tar_bytes(images))
  what, fix = _build_error(manual, tmp_path, image_fixes.UndecodableImageError)
  assert VAL_TAR in what and 'ILSVRC2012_val_00000003.JPEG' in what
  assert 'no decoder can read' in what
  assert f'{settings.SKIP_BAD_IMAGES_ENV_VAR}=1' in fix
  assert 'skip_bad_images=True' in fix


def test_duplicate_file_names(tmp_path):
  images = _images(2)
  manual = _val_manual(tmp_path, fake_archives.tar_bytes(images + images[:1]))
  what, fix = _build_error(manual, tmp_path, plan.DuplicateImagesError)
  assert 'ILSVRC2012_val_00000001.JPEG' in what and 'more than once' in what
  assert 'remove the duplicates' in fix


def test_validation_image_without_a_label(tmp_path):
  images = _images(1)
  extra = [('ILSVRC2012_val_00099999.JPEG', images[0][1])]
  manual = _val_manual(tmp_path, fake_archives.tar_bytes(images + extra))
  what, fix = _build_error(manual, tmp_path, labels.LabelError)
  assert 'ILSVRC2012_val_00099999.JPEG has no label' in what
  assert 'ILSVRC2012_img_val.tar' in fix


def test_validation_name_without_a_number():
  with pytest.raises(labels.LabelError) as error:
    labels.validation_number('ILSVRC2012_val_1.JPEG')
  what, fix = _lines(error)
  assert "'ILSVRC2012_val_1.JPEG'" in what and 'cannot be looked up' in what
  assert 'ILSVRC2012_img_val.tar' in fix


def _devkit_error(tmp_path, devkit: bytes) -> tuple[str, str]:
  manual = manual_dir_with(tmp_path, VAL_TAR)
  (manual / DEVKIT).write_bytes(devkit)
  return _build_error(manual, tmp_path, labels.LabelError)


def _replace_devkit(fix: str) -> None:
  assert f'Replace it with the official {DEVKIT}' in fix
  assert 'or remove it from the manual dir' in fix


def test_devkit_that_is_not_a_tar_gz(tmp_path):
  what, fix = _devkit_error(tmp_path, b'<html>404</html>')
  assert f'{DEVKIT} is not a readable .tar.gz' in what
  _replace_devkit(fix)


def test_devkit_without_meta_mat(tmp_path):
  path = tmp_path / 'devkit.tar'
  fake_archives.write_tar(path, [('ILSVRC2012_devkit_t12/readme.txt', b'hi')])
  what, fix = _devkit_error(tmp_path, gzip.compress(path.read_bytes(), mtime=0))
  assert 'has no ILSVRC2012_devkit_t12/data/meta.mat' in what
  _replace_devkit(fix)


def _write_devkit(path, ids_by_image) -> None:
  wnids = sorted(set(SHIPPED_VAL_WNIDS[:10]))
  synsets = [
      fake_archives.Synset(ilsvrc2012_id=i, wnid=w, words=w)
      for i, w in enumerate(wnids, start=1)
  ]
  fake_archives.write_devkit(path, synsets, ids_by_image(wnids))


def test_devkit_ground_truth_with_an_unknown_id(tmp_path):
  devkit = tmp_path / DEVKIT
  _write_devkit(devkit, lambda wnids: [1, 2, 999])
  what, fix = _devkit_error(tmp_path, devkit.read_bytes())
  assert 'names id 999, which meta.mat does not define' in what
  _replace_devkit(fix)


def test_devkit_that_disagrees(tmp_path):
  devkit = tmp_path / DEVKIT
  _write_devkit(
      devkit,
      lambda wnids: [wnids.index(SHIPPED_VAL_WNIDS[0]) + 1] * 10,
  )
  what, fix = _devkit_error(tmp_path, devkit.read_bytes())
  assert 'disagree on' in what and 'the first ILSVRC2012_val_00000002.JPEG' in what
  _replace_devkit(fix)


# Disk space.

_Usage = collections.namedtuple('_Usage', 'total used free')


def test_not_enough_disk_space_is_found_before_starting(tmp_path, monkeypatch):
  monkeypatch.setattr(
      disk_space.shutil, 'disk_usage', lambda _: _Usage(10**9, 10**9, 5_000_000)
  )
  manual = manual_dir_with(tmp_path, VAL_TAR)
  with pytest.raises(disk_space.DiskSpaceError) as error:
    build(manual, tmp_path / 'data')
  what, fix = _lines(error)
  assert f'Not enough free disk space under {tmp_path / "data"}' in what
  assert 'needs about 67.1 MB (the archives take 0.0 MB), and 5.0 MB are free' in what
  assert 'Free up space' in fix and '--data_dir' in fix
  assert not list((tmp_path / 'data').glob('**/*.tfrecord*'))


def test_disk_filling_up_while_writing(tmp_path, monkeypatch):
  def write(self, record):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(tfrecords.Writer, 'write', write)
  manual = manual_dir_with(tmp_path, VAL_TAR)
  with pytest.raises(disk_space.DiskSpaceError) as error:
    build(manual, tmp_path / 'data')
  what, fix = _lines(error)
  assert 'The disk filled up while writing' in what
  assert 'No space left on device' in what and 'nothing was published' in what
  assert f'Free up space under {tmp_path / "data" / NAME}' in fix
  assert '--data_dir' in fix
