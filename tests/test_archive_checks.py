"""Truncated, corrupt or foreign archives fail, naming the archive, the member and the byte.

The archives here are made up, so the checksum gate is off: with it on, the
known size of an official archive already catches a truncated one
(test_checksum_gate.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import image_reads
from imagenet2012_local.sources import labels
from imagenet2012_local.sources import tar_reader
from tests import fake_archives
from tests.helpers import (
    TRAIN_TAR,
    VAL_TAR,
    made_up_build_fails,
    tar_members,
    two_lines,
    val_images,
)


def _fails(tmp_path, data: bytes, archive_name: str = VAL_TAR) -> tuple[str, str]:
  return made_up_build_fails(tmp_path, archive_name, data, tar_reader.ArchiveError)


def _says_download_again(fix: str, archive_name: str = VAL_TAR) -> None:
  assert f'Download {archive_name} again from {archive_facts.DOWNLOAD_PAGE}' in fix


@pytest.mark.parametrize(
    'where, expected',
    [
        pytest.param(
            'between',
            ['ends at byte {cut:,}, after member {prev!r}, without the end-of-archive marker'],
            id='between',
        ),
        pytest.param(
            'in_data',
            ['member {this!r} (bytes {data:,} to', 'is cut off: the tar ends at byte {cut:,}'],
            id='in_data',
        ),
        pytest.param(
            'in_header', ['{archive} is {cut:,} bytes, not a multiple of 512'], id='in_header'
        ),
        pytest.param(
            'in_end_marker',
            ['{archive} is {cut:,} bytes, not a multiple of 512'],
            id='in_end_marker',
        ),
    ],
)
def test_truncated_archive_names_member_and_byte(tmp_path, where, expected):
  data = fake_archives.tar_bytes(val_images(6))
  members = tar_members(data)
  this, prev = members[3], members[2]
  cut = {
      'between': this.offset,  # tarfile alone would just see 3 images.
      'in_data': this.offset_data + 512,
      'in_header': this.offset + 100,
      'in_end_marker': len(data) - 100,
  }[where]
  what, fix = _fails(tmp_path, data[:cut])
  assert VAL_TAR in what
  for fragment in expected:
    assert fragment.format(
        archive=VAL_TAR, cut=cut, prev=prev.name, this=this.name, data=this.offset_data
    ) in what
  _says_download_again(fix)


def test_corrupt_header_is_not_a_silent_end(tmp_path):
  data = bytearray(fake_archives.tar_bytes(val_images(6)))
  header = tar_members(bytes(data))[4].offset
  data[header + 10] ^= 0xFF  # Bad checksum: tarfile would stop without a word.
  what, fix = _fails(tmp_path, bytes(data))
  assert f'unreadable tar header at byte {header:,}' in what
  assert "after member 'ILSVRC2012_val_00000004.JPEG'" in what
  _says_download_again(fix)


def test_zero_block_inside_the_archive_is_caught(tmp_path):
  """E.g. a preallocated download that stopped: zeros where data should be."""
  data = fake_archives.tar_bytes(val_images(6))
  header = tar_members(data)[2].offset
  what, fix = _fails(tmp_path, data[:header] + bytes(100 << 10))
  assert f'a zero block at byte {header:,}, after member' in what
  assert f'ends the member list, yet {100 << 10:,} bytes follow' in what
  _says_download_again(fix)


def _train_tar(tmp_path, classes: int = 3, per_class: int = 3) -> bytes:
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


@pytest.mark.parametrize('damage', ['header', 'garbage'])
def test_damaged_inner_train_tar_is_named(tmp_path, damage):
  data = bytearray(_train_tar(tmp_path))
  inner = tar_members(bytes(data))[1]
  start = inner.offset_data
  if damage == 'header':  # The second image's header of the inner tar.
    second = tar_members(bytes(data[start : start + inner.size]))[1].offset
    data[start + second + 10] ^= 0xFF
    expected = f'unreadable tar header at byte {start + second:,}'
  else:
    data[start : start + 512] = b'not a tar'.ljust(512, b'!')
    expected = f'not a tar archive: no valid tar header at byte {start:,}'
  what, _ = _fails(tmp_path, bytes(data), TRAIN_TAR)
  assert f'{TRAIN_TAR}/{inner.name}: ' in what
  assert expected in what


def test_truncated_inner_train_tar_is_named(tmp_path):
  """An inner tar whose last image runs past its end (its size field lies)."""
  rng = np.random.default_rng(2)
  wnid = labels.class_names_file().read_text().split()[0]
  inner = fake_archives.tar_bytes(
      [(f'{wnid}_{i}.JPEG', fake_archives.encode_image(rng, 32, 32)) for i in range(3)]
  )
  last = tar_members(inner)[-1]
  cut = last.offset_data + 512  # Inside the last image; a multiple of 512.
  outer = fake_archives.tar_bytes([(f'{wnid}.tar', inner[:cut])])
  what, _ = _fails(tmp_path, outer, TRAIN_TAR)
  assert f'{TRAIN_TAR}/{wnid}.tar: member {last.name!r}' in what
  assert 'is cut off' in what


@pytest.mark.parametrize(
    'page',
    [
        b'<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>\n',
        b'<html><body>Forbidden</body></html>',
    ],
    ids=['doctype', 'html'],
)
@pytest.mark.parametrize('padded', [False, True], ids=['as_is', 'padded'])
def test_html_page_saved_as_the_archive(tmp_path, page, padded):
  what, fix = _fails(tmp_path, page.ljust(1024) if padded else page)
  assert VAL_TAR in what and 'it is an HTML page' in what
  if padded:
    assert f'{VAL_TAR}: not a tar archive (it is an HTML page' in what
    assert 'no valid tar header at byte 0' in what
  else:
    assert 'not a multiple of 512' in what
  _says_download_again(fix)


def test_garbage_named_like_an_archive(tmp_path):
  noise = np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)
  what, fix = _fails(tmp_path, noise.tobytes())
  assert f'{VAL_TAR}: not a tar archive: no valid tar header at byte 0' in what
  _says_download_again(fix)


def test_image_cut_off_when_read_by_offset(tmp_path):
  """The archive shrank after it was indexed."""
  path = tmp_path / VAL_TAR
  path.write_bytes(b'x' * 1000)
  image = ('ILSVRC2012_val_00000001.JPEG', 512, 1024)
  with pytest.raises(tar_reader.ArchiveError) as error:
    list(image_reads.read_images(str(path), [image], 16))
  what, fix = two_lines(error.value)
  assert 'image ILSVRC2012_val_00000001.JPEG (bytes 512 to 1,536) is cut off' in what
  assert 'the file ends at byte 1,000' in what
  _says_download_again(fix)
