"""`--file_format array_record` builds: random access for Grain and PyTorch."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from imagenet2012_local.commands import cli
from imagenet2012_local import report
from imagenet2012_local import settings
from tests.helpers import DUMMY_DIR, build, read_split

_SKIP_DECODING = {'image': tfds.decode.SkipDecoding()}


@pytest.fixture(scope='module')
def array_record_builder(tmp_path_factory) -> tfds.core.DatasetBuilder:
  """The dummy data built as ArrayRecord, through download_and_prepare."""
  data_dir = tmp_path_factory.mktemp('array_record_build')
  # Module-scoped, so set up before the per-test isolation of the checksum gate.
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv(settings.CACHE_DIR_ENV_VAR, str(data_dir / 'cache'))
    mp.delenv(settings.VERIFY_ENV_VAR, raising=False)
    return build(DUMMY_DIR, data_dir, file_format='array_record')


def test_shards_are_array_record(array_record_builder):
  files = [p.name for p in Path(array_record_builder.data_dir).iterdir()]
  assert any('.array_record-' in name for name in files), files
  assert not any('.tfrecord-' in name for name in files), files


def test_random_access_matches_the_tfrecord_build(
    array_record_builder, dummy_build
):
  sources = array_record_builder.as_data_source(decoders=_SKIP_DECODING)
  assert set(sources) == {'train', 'validation', 'test'}
  for split, source in sources.items():
    expected = read_split(dummy_build, split)
    assert len(source) == len(expected)
    # Out of order, as a shuffling sampler reads them.
    indices = list(range(len(source)))
    random.Random(0).shuffle(indices)
    examples = {}
    for i in indices:
      example = source[i]
      examples[example['file_name'].decode()] = (
          example['label'],
          example['image'],
      )
    assert examples == expected, split


def test_decoded_examples(array_record_builder):
  source = array_record_builder.as_data_source(split='train')
  example = source[3]
  assert example['image'].dtype == np.uint8
  assert example['image'].ndim == 3 and example['image'].shape[-1] == 3
  assert 0 <= example['label'] < 1000
  batch = source.__getitems__([0, 5, 25])  # What batched loaders call.
  assert len(batch) == 3


def test_metadata_matches_the_tfrecord_build(array_record_builder, dummy_build):
  ours = array_record_builder.info.metadata
  tfrecord = tfds.builder('imagenet2012_local', data_dir=dummy_build).info
  for key in ('fixed_images', 'class_words'):
    assert ours[key] == tfrecord.metadata[key], key
  assert {name: a['md5'] for name, a in ours['archives'].items()} == {
      name: a['md5'] for name, a in tfrecord.metadata['archives'].items()
  }


def test_report_reads_array_record(array_record_builder, tmp_path):
  data_dir = Path(array_record_builder.data_dir).parent.parent
  out = tmp_path / 'report'
  argv = ['report', '--data_dir', str(data_dir), '--out', str(out)]
  assert cli.main(argv) == 0
  summary = (out / report.SUMMARY_FILE).read_text()
  assert '(array_record)' in summary
  assert '| train | 26 | 1,281,167 |' in summary
  assert (out / 'train_fixed.png').exists()
