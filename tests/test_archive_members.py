"""Which tar members become examples: images named like the split's are used,
non-files and hidden files are skipped and recorded, anything else fails."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import labels
from imagenet2012_local.engine import plan
from imagenet2012_local.sources import tar_reader
from tests import fake_archives
from tests.helpers import (
    TRAIN_TAR,
    VAL_TAR,
    build,
    made_up_build_fails,
    manual_dir_holding,
    metadata,
    read_split,
    tar_members,
    val_images,
)


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


def test_non_image_members_are_skipped_and_recorded(tmp_path):
  images = val_images(3)
  extras = [
      ('ILSVRC2012_val_00000009.JPEG', tarfile.SYMTYPE, b'/etc/passwd'),
      ('ILSVRC2012_val_00000008.JPEG', tarfile.LNKTYPE, images[0][0].encode()),
      ('../escape', tarfile.DIRTYPE, b''),
      ('.DS_Store', tarfile.REGTYPE, b'\0\0\0\1Bud1'),
      ('._ILSVRC2012_val_00000001.JPEG', tarfile.REGTYPE, b'AppleDouble'),
      ('dir/.hidden', tarfile.REGTYPE, b'x'),
  ]
  manual = manual_dir_holding(tmp_path, VAL_TAR, _tar_with_extras(images, extras))
  build(manual, tmp_path / 'data', verify_checksums=False)
  stored = read_split(tmp_path / 'data', 'validation')
  assert {n: data for n, (_, data) in stored.items()} == dict(images)
  assert metadata(tmp_path / 'data')['skipped_members']['validation'] == {
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
  manual = manual_dir_holding(tmp_path, TRAIN_TAR, outer)
  build(manual, tmp_path / 'data', verify_checksums=False)
  assert metadata(tmp_path / 'data')['skipped_members']['train'] == {
      '._n01440764.tar': 'a hidden file',
      f'{wnid}.tar/.DS_Store': 'a hidden file',
  }
  assert set(read_split(tmp_path / 'data', 'train')) == {f'{wnid}_1.JPEG'}


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
def test_other_names_fail_instead_of_being_used(tmp_path, name):
  images = val_images(4)
  data = fake_archives.tar_bytes(images + [(name, images[0][1])])
  offset = tar_members(data)[-1].offset
  what, fix = made_up_build_fails(tmp_path, VAL_TAR, data, tar_reader.ArchiveError)
  assert f'member {name!r} (header at byte {offset:,}) is not a file named like' in what
  assert 'ILSVRC2012_val_<8 digits>.JPEG' in what
  assert f'Use the official {VAL_TAR}' in fix
  assert 'at the top level (no folders)' in fix


def test_the_wrong_archive_under_a_split_name(tmp_path):
  data = fake_archives.tar_bytes(val_images(2))
  what, _ = made_up_build_fails(tmp_path, TRAIN_TAR, data, tar_reader.ArchiveError)
  assert "member 'ILSVRC2012_val_00000001.JPEG' (header at byte 0)" in what
  assert 'is not a file named like <wnid>.tar' in what


def test_an_archive_without_images(tmp_path):
  empty_tar = bytes(10240)
  what, fix = made_up_build_fails(tmp_path, VAL_TAR, empty_tar, tar_reader.ArchiveError)
  assert 'holds no image named like ILSVRC2012_val_<8 digits>.JPEG' in what
  assert f'Put the official {VAL_TAR} from {archive_facts.DOWNLOAD_PAGE}' in fix


def test_duplicate_file_names_in_a_tar_are_an_error(tmp_path):
  images = val_images(3)
  data = fake_archives.tar_bytes(images + images[1:2])
  what, fix = made_up_build_fails(tmp_path, VAL_TAR, data, plan.DuplicateImagesError)
  assert 'holds 1 file names more than once, e.g. ILSVRC2012_val_00000002.JPEG' in what
  assert 'remove the duplicates' in fix
