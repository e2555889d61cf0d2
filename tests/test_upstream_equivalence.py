"""imagenet2012_local is a drop-in for upstream TFDS imagenet2012 5.1.0.

Both are built from the same dummy tars; the dummy's odd images carry the names
upstream special-cases, so upstream fixes them too (train split).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests.helpers import DUMMY_DIR, build, read_split

SPLITS = ['train', 'validation', 'test']
# Mean absolute difference per pixel value (0-255) allowed between two
# re-encodings of the same image: JPEG rounding, not a different picture.
JPEG_TOLERANCE = 3.0


@pytest.fixture(scope='module')
def upstream_build(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp('upstream')
  build(DUMMY_DIR, data_dir, name='imagenet2012:5.1.0')
  return data_dir


def _pixels(jpeg: bytes) -> np.ndarray:
  return tf.io.decode_jpeg(jpeg, channels=3).numpy().astype(np.float64)


def test_same_features_and_supervised_keys(dummy_build, upstream_build):
  ours = tfds.builder('imagenet2012_local', data_dir=dummy_build).info
  theirs = tfds.builder('imagenet2012:5.1.0', data_dir=upstream_build).info
  assert repr(ours.features) == repr(theirs.features)
  assert ours.features['label'].names == theirs.features['label'].names
  assert ours.supervised_keys == theirs.supervised_keys
  assert {s: ours.splits[s].num_examples for s in SPLITS} == {
      s: theirs.splits[s].num_examples for s in SPLITS
  }


@pytest.mark.parametrize('split', SPLITS)
def test_same_examples(dummy_build, upstream_build, split):
  ours = read_split(dummy_build, split)
  theirs = read_split(upstream_build, split, name='imagenet2012:5.1.0')
  assert ours.keys() == theirs.keys()
  differing_bytes = set()
  for file_name, (label, image) in ours.items():
    their_label, their_image = theirs[file_name]
    assert label == their_label, file_name
    if image != their_image:
      differing_bytes.add(file_name)
      diff = np.abs(_pixels(image) - _pixels(their_image)).mean()
      assert diff < JPEG_TOLERANCE, (file_name, diff)
  # Only fixed images may differ in bytes.
  fixed = tfds.builder('imagenet2012_local', data_dir=dummy_build).info.metadata
  assert differing_bytes <= set(fixed['fixed_images'][split])
