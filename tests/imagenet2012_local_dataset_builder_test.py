"""TFDS's standard builder checks on the bundled dummy archives."""

import tensorflow_datasets as tfds

from imagenet2012_local import imagenet2012_local_dataset_builder
from tests.helpers import DUMMY_DIR


class Imagenet2012LocalTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = imagenet2012_local_dataset_builder.Builder
  EXAMPLE_DIR = str(DUMMY_DIR)
  SPLITS = {'train': 26, 'validation': 10, 'test': 5}
  # The checksum gate stays on: checksums/dummy_data.tsv knows the dummy archives.


if __name__ == '__main__':
  tfds.testing.test_main()
