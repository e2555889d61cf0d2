"""The fake ImageNet archives: their structure, and the same bytes on every run."""

from __future__ import annotations

import io
import tarfile
import time

import numpy as np
import pytest
import scipy.io
from PIL import Image

from tests import fake_archives


def _members(tar: tarfile.TarFile) -> list[tuple[str, bytes]]:
  return [(m.name, tar.extractfile(m).read()) for m in tar]


def _devkit(path) -> None:
  fake_archives.write_devkit(
      path,
      [
          fake_archives.Synset(1, 'n02119789', 'kit fox'),
          fake_archives.Synset(2, 'n01440764', 'tench'),
          fake_archives.Synset(3, 'n00001740', 'entity', num_children=2),
      ],
      [2, 1, 1],
  )


def test_write_tar_keeps_order_and_fixed_headers(tmp_path):
  members = [('b.JPEG', b'bb'), ('a.JPEG', b''), ('c.JPEG', b'c' * 1000)]
  fake_archives.write_tar(tmp_path / 'x.tar', members)
  with tarfile.open(tmp_path / 'x.tar') as tar:
    assert _members(tar) == members
    for info in tar.getmembers():
      assert (info.mtime, info.uid, info.gid, info.mode) == (
          1335830400, 0, 0, 0o644
      )
      assert info.uname == info.gname == ''


def test_tar_bytes_equals_write_tar(tmp_path):
  members = [('a', b'1'), ('b', b'22')]
  fake_archives.write_tar(tmp_path / 'x.tar', members)
  assert fake_archives.tar_bytes(members) == (tmp_path / 'x.tar').read_bytes()


def test_write_train_tar_nests_class_tars(tmp_path):
  images = {
      wnid: [(f'{wnid}_{n}.JPEG', f'{wnid}/{n}'.encode()) for n in range(8)]
      for wnid in ('n03', 'n01', 'n02', 'n04', 'n05')
  }
  fake_archives.write_train_tar(tmp_path / 'train.tar', images, seed=1)
  with tarfile.open(tmp_path / 'train.tar') as outer:
    inner_tars = _members(outer)
  names = [name for name, _ in inner_tars]
  assert sorted(names) == [f'{w}.tar' for w in sorted(images)]
  assert names != sorted(names)
  for name, data in inner_tars:
    with tarfile.open(fileobj=io.BytesIO(data)) as inner:
      got = _members(inner)
    wnid = name.removesuffix('.tar')
    assert sorted(got) == sorted(images[wnid])
    assert got != sorted(got)


@pytest.mark.parametrize('adobe_marker', [True, False])
def test_cmyk_jpeg_adobe_marker(adobe_marker):
  data = fake_archives.encode_image(
      np.random.default_rng(0), 50, 40, mode='CMYK', adobe_marker=adobe_marker
  )
  with Image.open(io.BytesIO(data)) as image:
    image.load()
    assert (image.format, image.mode, image.size) == ('JPEG', 'CMYK', (50, 40))
    assert image.layers == 4  # Components in the SOF.
    assert ('adobe' in image.info) == adobe_marker  # Read from APP14.


@pytest.mark.parametrize('mode', ['RGB', 'L'])
def test_png_image(mode):
  data = fake_archives.encode_image(
      np.random.default_rng(0), 30, 20, mode=mode, image_format='PNG'
  )
  assert data.startswith(b'\x89PNG\r\n\x1a\n')
  with Image.open(io.BytesIO(data)) as image:
    assert (image.mode, image.size) == (mode, (30, 20))


def test_devkit_reads_like_the_real_one(tmp_path):
  _devkit(tmp_path / 'devkit.tar.gz')
  with tarfile.open(tmp_path / 'devkit.tar.gz', 'r:gz') as tar:
    files = dict(_members(tar))
  data_dir = 'ILSVRC2012_devkit_t12/data'
  truth = files[f'{data_dir}/ILSVRC2012_validation_ground_truth.txt']
  assert truth == b'2\n1\n1\n'
  synsets = scipy.io.loadmat(io.BytesIO(files[f'{data_dir}/meta.mat']))[
      'synsets'
  ]
  assert synsets.shape == (3, 1)
  assert synsets[0][0]['WNID'][0] == 'n02119789'
  assert synsets[0][0]['ILSVRC2012_ID'][0][0] == 1
  assert synsets[2][0]['words'][0] == 'entity'
  assert synsets[2][0]['num_children'][0][0] == 2


def test_same_inputs_same_bytes(tmp_path, monkeypatch):
  def image() -> bytes:
    return fake_archives.encode_image(
        np.random.default_rng(7), 40, 40, mode='CMYK', adobe_marker=False
    )

  assert image() == image()
  _devkit(tmp_path / 'a.tar.gz')
  # savemat writes the current time into the MAT-file header.
  monkeypatch.setattr(time, 'asctime', lambda *_: 'Thu Jan  1 00:00:00 2099')
  _devkit(tmp_path / 'b.tar.gz')
  assert (tmp_path / 'a.tar.gz').read_bytes() == (
      tmp_path / 'b.tar.gz'
  ).read_bytes()
  assert fake_archives.shuffled(range(20), 3) == fake_archives.shuffled(
      range(20), 3
  )
