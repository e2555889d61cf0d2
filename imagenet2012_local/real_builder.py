"""imagenet2012_local_real: TFDS `imagenet2012_real` from the validation archive.

A drop-in for upstream's 1.0.0: `validation` only, each image with
`original_label`, `real_label` (the ReaL labels of "Are we done with
ImageNet?", shipped in `variant_data/`: a list, empty where the raters agreed
on none) and `file_name`; supervised keys `(image, real_label)`. The
examples are the main builder's with the labels added (`real_layout`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import tensorflow_datasets as tfds

from imagenet2012_local.sources import archive_facts
from imagenet2012_local import imagenet2012_local_dataset_builder
from imagenet2012_local.sources import labels
from imagenet2012_local.layouts import real_layout
from imagenet2012_local.variants import variant_splits
from imagenet2012_local.sources import source as source_lib


class RealBuilder(
    variant_splits.VariantSplits, imagenet2012_local_dataset_builder.Builder
):
  """ImageNet's validation images with their ReaL labels, as TFDS `imagenet2012_real`."""

  VARIANT_SPLITS = (archive_facts.VALIDATION.split,)

  name = 'imagenet2012_local_real'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {
      '1.0.0': (
          'The examples of upstream imagenet2012_real 1.0.0, read straight'
          ' from the archive, with the ReaL labels shipped.'
      ),
  }

  def _info(self) -> tfds.core.DatasetInfo:
    names_file = labels.class_names_file()
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(encoding_format='jpeg'),
            'original_label': tfds.features.ClassLabel(names_file=names_file),
            'real_label': tfds.features.Sequence(
                tfds.features.ClassLabel(names_file=names_file)
            ),
            'file_name': tfds.features.Text(),  # e.g. 'ILSVRC2012_val_00000001.JPEG'
        }),
        supervised_keys=('image', 'real_label'),
        homepage='https://github.com/google-research/reassessed-imagenet',
        metadata=tfds.core.MetadataDict(),
    )

  def _layout(
      self, sources: Mapping[str, source_lib.Source]
  ) -> real_layout.RealLayout:
    return real_layout.RealLayout(self, sources)

  def _generate_examples(
      self, source: source_lib.Source
  ) -> Iterator[tuple[str, Mapping[str, object]]]:
    """TFDS's generator path: the main builder's examples, relabeled."""
    for key, example in super()._generate_examples(source):
      yield key, real_layout.real_features(
          example['image'], example['label'], example['file_name']
      )
