"""imagenet2012_local_subset/{1pct,10pct}: train exactly the listed images,
validation all of it, images the list leaves out never read, and a listed
image the archive lacks named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from imagenet2012_local.engine import image_fixes
from imagenet2012_local.sources import labels
from imagenet2012_local.sources import split_sources
from imagenet2012_local import subset_builder
from imagenet2012_local.variants import variant_files
from tests import fake_archives
from tests.helpers import TRAIN_TAR, VAL_TAR, build, two_lines, val_images

NAME = 'imagenet2012_local_subset'
CLASS_NAMES = labels.class_names_file().read_text().split()
LISTED = [name.decode() for name in variant_files.subset_names('1pct')]
# Not in either list: a train image the subsets leave out, and one that no
# decoder reads, which would fail any build that read it.
UNLISTED = ['n01440764_99999991.JPEG', 'n15075141_99999992.JPEG']
BROKEN = 'n01443537_99999993.JPEG'
NOT_AN_IMAGE = b'not an image at all'
VALIDATION = val_images(12)


def _train_tar(path: Path, names: list[str]) -> None:
  """ILSVRC2012_img_train.tar holding `names` (one tiny JPEG for all, which
  keeps 12,811 images at ~15 MB), the unlisted ones and the broken one."""
  jpeg = fake_archives.encode_image(np.random.default_rng(0), 8, 8)
  by_wnid = {}
  for name in [*names, *UNLISTED]:
    by_wnid.setdefault(name.split('_')[0], []).append((name, jpeg))
  by_wnid.setdefault(BROKEN.split('_')[0], []).append((BROKEN, NOT_AN_IMAGE))
  fake_archives.write_train_tar(path, by_wnid, seed=1)


def _manual_dir(root: Path, train_names: list[str]) -> Path:
  manual = root / 'manual'
  manual.mkdir(parents=True)
  _train_tar(manual / TRAIN_TAR, train_names)
  fake_archives.write_tar(manual / VAL_TAR, fake_archives.shuffled(VALIDATION, 2))
  return manual


def _build(manual: Path, data_dir: Path, config: str):
  return build(manual, data_dir, name=f'{NAME}/{config}', verify_checksums=False)


def _read(data_dir: Path, config: str, split: str) -> dict[str, tuple[int, bytes]]:
  ds = tfds.load(
      f'{NAME}/{config}', split=split, data_dir=data_dir,
      decoders={'image': tfds.decode.SkipDecoding()},
  )
  return {
      ex['file_name'].decode(): (int(ex['label']), ex['image'])
      for ex in tfds.as_numpy(ds)
  }


@pytest.fixture(scope='module')
def one_percent(tmp_path_factory) -> tuple[Path, Path]:
  """(manual dir, data dir) of a 1pct build from a train archive holding every
  listed image and some unlisted ones."""
  root = tmp_path_factory.mktemp('one_percent')
  manual = _manual_dir(root, LISTED)
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv('IMAGENET2012_LOCAL_CACHE_DIR', str(root / 'cache'))
    _build(manual, root / 'data', '1pct')
  return manual, root / 'data'


def test_train_is_exactly_the_listed_images(one_percent):
  _, data_dir = one_percent
  train = _read(data_dir, '1pct', 'train')
  assert sorted(train) == LISTED
  assert len(train) == 12_811
  for file_name, (label, _) in train.items():
    assert CLASS_NAMES[label] == file_name.split('_')[0]


def test_validation_is_all_of_it(one_percent):
  _, data_dir = one_percent
  validation = _read(data_dir, '1pct', 'validation')
  assert {name: image for name, (_, image) in validation.items()} == dict(VALIDATION)
  wnids = labels.tfds_validation_labels().wnids
  for file_name, (label, _) in validation.items():
    assert CLASS_NAMES[label] == wnids[labels.validation_number(file_name) - 1]


def test_unlisted_images_are_never_read(one_percent):
  # The broken image would fail the build had it been read.
  with pytest.raises(image_fixes.UndecodableImageError):
    image_fixes.ImageFixer(TRAIN_TAR, skip_bad_images=False)(BROKEN, NOT_AN_IMAGE)
  _, data_dir = one_percent
  builder = tfds.builder(f'{NAME}/1pct', data_dir=data_dir)
  assert set(builder.info.splits) == {'train', 'validation'}
  assert builder.info.metadata['skipped_images'] == {'train': {}, 'validation': {}}
  assert builder.info.supervised_keys == ('image', 'label')


def test_ten_percent_names_how_many_listed_images_the_archive_lacks(one_percent, tmp_path):
  manual, _ = one_percent
  with pytest.raises(subset_builder.MissingSubsetImagesError) as raised:
    _build(manual, tmp_path, '10pct')
  what, how = two_lines(raised.value)
  ten = [name.decode() for name in variant_files.subset_names('10pct')]
  first_missing = sorted(set(ten) - set(LISTED))[:5]
  assert what == (
      f'{manual / TRAIN_TAR} lacks 115,305 of the 128,116 images of the 10pct'
      f' subset, e.g. {", ".join(first_missing)}.'
  )
  assert how == (
      'The subset is exactly these images, from all 1,000 classes: build it'
      ' from the official ILSVRC2012_img_train.tar.'
  )
  assert not tfds.builder(f'{NAME}/10pct', data_dir=tmp_path).is_prepared()


def test_a_listed_image_the_archive_lacks_is_named(tmp_path):
  lacking = [LISTED[0], LISTED[-1]]
  manual = _manual_dir(tmp_path, [n for n in LISTED if n not in lacking])
  with pytest.raises(subset_builder.MissingSubsetImagesError) as raised:
    _build(manual, tmp_path / 'data', '1pct')
  what, _ = two_lines(raised.value)
  assert what == (
      f'{manual / TRAIN_TAR} lacks 2 of the 12,811 images of the 1pct subset,'
      f' e.g. {lacking[0]}, {lacking[1]}.'
  )


def test_without_the_train_archive_validation_is_built(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  fake_archives.write_tar(manual / VAL_TAR, VALIDATION)
  builder = _build(manual, tmp_path / 'data', '1pct')
  assert set(builder.info.splits) == {'validation'}
  assert sorted(_read(tmp_path / 'data', '1pct', 'validation')) == [n for n, _ in VALIDATION]


def test_a_manual_dir_with_only_the_test_archive_fails_naming_what_it_needs(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  fake_archives.write_tar(manual / 'ILSVRC2012_img_test.tar', [])
  with pytest.raises(split_sources.MissingArchivesError) as raised:
    _build(manual, tmp_path / 'data', '10pct')
  assert two_lines(raised.value) == (
      f'imagenet2012_local_subset/10pct is built from ILSVRC2012_img_train.tar'
      f' and ILSVRC2012_img_val.tar, and {manual} holds only'
      ' ILSVRC2012_img_test.tar.',
      'Download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from'
      ' https://image-net.org/download-images (free registration) into that'
      ' folder, or pass the folder that holds them as --manual_dir.',
  )
