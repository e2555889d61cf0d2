"""imagenet2012_local_real: the validation images with their ReaL labels, by
file number, in TFDS `imagenet2012_real`'s examples."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer

import imagenet2012_local  # noqa: F401  (registers the builders)
from imagenet2012_local.layouts import real_layout
from imagenet2012_local.sources import split_sources
from imagenet2012_local.engine import worker_pool
from tests import fake_archives
from tests.helpers import DUMMY_DIR, TRAIN_TAR, VAL_TAR, build, manual_dir_with, two_lines
# A function of a module that imports no TFDS, for a worker to run.
from tests.test_worker_pool import _imports_tfds

NAME = 'imagenet2012_local_real'
FEATURES = tfds.builder(NAME).info.features
SERIALIZER = example_serializer.ExampleSerializer(FEATURES.get_serialized_info())


@pytest.mark.parametrize('name', [
    'ILSVRC2012_val_00000001.JPEG',  # No ReaL label: an empty list.
    'ILSVRC2012_val_00000002.JPEG',  # Two.
    'ILSVRC2012_val_00000026.JPEG',  # Three: (619, 526, 846).
    'ILSVRC2012_val_00050000.JPEG',  # The last.
])
@pytest.mark.parametrize('label', [0, 127, 128, 999])
def test_records_are_tfds_serializers_bytes(name, label, tmp_path):
  image = bytes(range(256)) * 9
  features = real_layout.real_features(image, label, name)
  tfds_bytes = SERIALIZER.get_tf_example(
      FEATURES.encode_example(features)
  ).SerializeToString(deterministic=True)
  layout = real_layout.RealLayout(tfds.builder(NAME, data_dir=tmp_path), ['validation'])
  assert layout.encode(image, label, name) == tfds_bytes


# Hand-checked against the images (see tests/test_variant_files.py): the
# ReaL labels of the first validation images, and of the last one.
HAND_CHECKED = {
    'ILSVRC2012_val_00000001.JPEG': [],  # The raters agreed on no label.
    'ILSVRC2012_val_00000002.JPEG': [970, 795],  # alp, ski
    'ILSVRC2012_val_00000003.JPEG': [230, 231],  # Shetland sheepdog, collie
    'ILSVRC2012_val_00000004.JPEG': [809],  # soup bowl
    'ILSVRC2012_val_00000005.JPEG': [516, 850],  # cradle, teddy bear
    'ILSVRC2012_val_00050000.JPEG': [355],  # llama
}
# Their original labels (imagenet2012's, TFDS's validation_labels.txt).
ORIGINAL = {
    'ILSVRC2012_val_00000001.JPEG': 65,  # sea snake
    'ILSVRC2012_val_00000002.JPEG': 970,
    'ILSVRC2012_val_00000003.JPEG': 230,
    'ILSVRC2012_val_00000004.JPEG': 809,
    'ILSVRC2012_val_00000005.JPEG': 516,
    'ILSVRC2012_val_00050000.JPEG': 355,
}
IMAGES = {
    name: fake_archives.encode_image(np.random.default_rng(n), 16, 16)
    for n, name in enumerate(HAND_CHECKED)
}


def _read(data_dir: Path) -> dict[str, dict]:
  ds = tfds.load(
      NAME, split='validation', data_dir=data_dir,
      decoders={'image': tfds.decode.SkipDecoding()},
  )
  return {ex['file_name'].decode(): ex for ex in tfds.as_numpy(ds)}


@pytest.fixture(scope='module')
def manual_dir(tmp_path_factory) -> Path:
  """The images of HAND_CHECKED, last first (the labels go by file number,
  not by place in the archive), beside the dummy train archive, which ReaL
  does not read."""
  manual = tmp_path_factory.mktemp('real') / 'manual'
  manual.mkdir()
  fake_archives.write_tar(manual / VAL_TAR, reversed(IMAGES.items()))
  shutil.copy(DUMMY_DIR / TRAIN_TAR, manual / TRAIN_TAR)
  return manual


@pytest.mark.parametrize('max_examples', [None, 100])  # Sharded; TFDS's generator path.
def test_real_labels_of_named_images(manual_dir, tmp_path, max_examples):
  builder = tfds.builder(NAME, data_dir=tmp_path, verify_checksums=False)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, max_examples_per_split=max_examples
  ))
  assert set(builder.info.splits) == {'validation'}
  examples = _read(tmp_path)
  assert {name: list(ex['real_label']) for name, ex in examples.items()} == HAND_CHECKED
  assert {name: ex['original_label'] for name, ex in examples.items()} == ORIGINAL
  assert {name: ex['image'] for name, ex in examples.items()} == IMAGES


def test_supervised_pairs_are_image_and_real_labels(manual_dir, tmp_path):
  build(manual_dir, tmp_path, name=NAME, verify_checksums=False)
  ds = tfds.load(NAME, split='validation', data_dir=tmp_path, as_supervised=True)
  found = sorted(tuple(labels_) for _, labels_ in tfds.as_numpy(ds))
  assert found == sorted(tuple(labels_) for labels_ in HAND_CHECKED.values())
  for image, _ in tfds.as_numpy(ds):
    assert image.shape == (16, 16, 3)


def test_without_the_validation_archive_it_fails_naming_it(tmp_path):
  manual = manual_dir_with(tmp_path, TRAIN_TAR)
  with pytest.raises(split_sources.MissingArchivesError) as raised:
    build(manual, tmp_path / 'data', name=NAME, verify_checksums=False)
  assert two_lines(raised.value) == (
      f'imagenet2012_local_real is built from ILSVRC2012_img_val.tar, and'
      f' {manual} holds only ILSVRC2012_img_train.tar.',
      'Download ILSVRC2012_img_val.tar from https://image-net.org/download-images'
      ' (free registration) into that folder, or pass the folder that holds'
      ' it as --manual_dir.',
  )


def test_workers_encode_with_the_real_layout_without_importing_tfds(tmp_path):
  layout = real_layout.RealLayout(tfds.builder(NAME, data_dir=tmp_path), ['validation'])
  with worker_pool.WorkerPool(1) as pool:
    assert list(pool(functools.partial(_imports_tfds, layout), [0])) == [False]
    names = list(HAND_CHECKED)
    encoded = list(pool(functools.partial(layout.encode, b'jpeg', 3), names))
  assert encoded == [layout.encode(b'jpeg', 3, name) for name in names]
