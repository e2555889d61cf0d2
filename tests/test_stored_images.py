"""What a build stores for each image: its exact bytes, an RGB JPEG re-encoding
(CMYK, PNG), or, for bytes no decoder reads, an error or (asked for) nothing."""

from __future__ import annotations

import io
import json

import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

from imagenet2012_local.engine import image_fixes
from imagenet2012_local import settings
from tests import fake_archives
from tests.helpers import (
    DUMMY_DIR,
    NAME,
    TEST_TAR,
    TRAIN_TAR,
    VAL_TAR,
    build,
    made_up_build_fails,
    manual_dir_holding,
    metadata,
    read_split,
    tar_images,
    val_images,
)

EXPECTED_FIXES = {
    'train': {'n01739381_1309.JPEG', 'n04596742_4225.JPEG', 'n02105855_2933.JPEG'},
    'validation': {'ILSVRC2012_val_00000003.JPEG'},
    'test': {'ILSVRC2012_test_00000002.JPEG'},
}
SPLIT_TARS = {'train': TRAIN_TAR, 'validation': VAL_TAR, 'test': TEST_TAR}


@pytest.mark.parametrize('split', ['train', 'validation', 'test'])
def test_unfixed_images_keep_their_exact_bytes(dummy_build, split):
  stored = read_split(dummy_build, split)
  archive = tar_images(DUMMY_DIR / SPLIT_TARS[split])
  kept = {name for name in archive if name not in EXPECTED_FIXES[split]}
  assert kept  # Grayscale and RGB JPEGs among them.
  for name in kept:
    assert stored[name][1] == archive[name][1], name


@pytest.mark.parametrize('split', ['train', 'validation', 'test'])
def test_cmyk_and_png_become_rgb_jpegs_and_are_recorded(dummy_build, split):
  stored = read_split(dummy_build, split)
  archive = tar_images(DUMMY_DIR / SPLIT_TARS[split])
  assert set(metadata(dummy_build)['fixed_images'][split]) == EXPECTED_FIXES[split]
  for name in EXPECTED_FIXES[split]:
    header = image_fixes.read_jpeg_header(stored[name][1])
    assert header is not None and header.components == 3, name
    with PIL.Image.open(io.BytesIO(archive[name][1])) as original:
      assert (header.width, header.height) == original.size


def test_grayscale_jpegs_are_kept(dummy_build):
  train = read_split(dummy_build, 'train')
  header = image_fixes.read_jpeg_header(train['n01440764_18.JPEG'][1])
  assert header.components == 1


# Images no decoder reads.

BAD_IMAGES = ('ILSVRC2012_val_00000002.JPEG', 'ILSVRC2012_val_00000004.JPEG')


def _with_bad_images() -> dict[str, bytes]:
  """Six validation images, of which BAD_IMAGES are a cut-off JPEG and a web page."""
  images = dict(val_images(6))
  good = fake_archives.encode_image(np.random.default_rng(5), 48, 48)
  images[BAD_IMAGES[0]] = good[: len(good) // 2]
  images[BAD_IMAGES[1]] = b'<html>404 Not Found</html>'
  return images


def test_an_undecodable_image_fails_with_its_name(tmp_path):
  data = fake_archives.tar_bytes(_with_bad_images().items())
  what, fix = made_up_build_fails(
      tmp_path, VAL_TAR, data, image_fixes.UndecodableImageError
  )
  assert VAL_TAR in what and 'no decoder can read' in what
  assert any(name in what for name in BAD_IMAGES)
  assert f'{settings.SKIP_BAD_IMAGES_ENV_VAR}=1' in fix
  assert 'skip_bad_images=True' in fix


@pytest.mark.parametrize('how', ['argument', 'environment'])
def test_skip_bad_images_leaves_them_out_and_records_them(tmp_path, monkeypatch, how):
  images = _with_bad_images()
  manual = manual_dir_holding(tmp_path, VAL_TAR, fake_archives.tar_bytes(images.items()))
  if how == 'environment':
    monkeypatch.setenv(settings.SKIP_BAD_IMAGES_ENV_VAR, '1')
    builder = build(manual, tmp_path / 'data', verify_checksums=False)
  else:
    builder = build(
        manual, tmp_path / 'data', verify_checksums=False, skip_bad_images=True
    )
  stored = read_split(tmp_path / 'data', 'validation')
  assert set(stored) == set(images) - set(BAD_IMAGES)
  skipped = metadata(tmp_path / 'data')['skipped_images']['validation']
  assert set(skipped) == set(BAD_IMAGES)
  assert 'truncated' in skipped['ILSVRC2012_val_00000002.JPEG']
  # Split info counts what was written, shard by shard.
  info = tfds.builder(NAME, data_dir=tmp_path / 'data').info
  assert sum(info.splits['validation'].shard_lengths) == len(stored) == 4
  assert builder.info.splits['validation'].num_examples == 4


def test_two_builds_with_skipped_images_give_identical_shards_and_metadata(tmp_path):
  manual = manual_dir_holding(
      tmp_path, VAL_TAR, fake_archives.tar_bytes(_with_bad_images().items())
  )
  for name in ('first', 'second'):
    build(manual, tmp_path / name, verify_checksums=False, skip_bad_images=True)
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
