"""imagenet2012_local_resized: TFDS `imagenet_resized` (8x8 to 64x64) from the archives.

A drop-in for upstream's 0.1.0, whose downloads (the paper authors' npz
zips) are gone: `train` and `validation`, each image squashed to size x size
with the box filter as the downsampled-ImageNet paper did (`resized_layout`),
stored as PNG, labels in `imagenet_resized`'s own class order (shipped in
`variant_data/`). The planning, reading, fixes, checks, resume and
publishing are the main builder's; every image is decoded, so the build is
bound by the CPUs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import tensorflow_datasets as tfds

from imagenet2012_local.sources import archive_facts
from imagenet2012_local import imagenet2012_local_dataset_builder
from imagenet2012_local.sources import labels
from imagenet2012_local.layouts import resized_layout
from imagenet2012_local.variants import variant_splits
from imagenet2012_local.sources import source as source_lib

_SPLITS = (archive_facts.TRAIN.split, archive_facts.VALIDATION.split)
_VERSION = tfds.core.Version('0.1.0')  # Upstream imagenet_resized's configs'.
# Upstream imagenet_resized's citation: the paper that made these datasets.
_CITATION = """\
@article{chrabaszcz2017downsampled,
  title={A downsampled variant of imagenet as an alternative to the cifar datasets},
  author={Chrabaszcz, Patryk and Loshchilov, Ilya and Hutter, Frank},
  journal={arXiv preprint arXiv:1707.08819},
  year={2017}
}"""


@dataclasses.dataclass(eq=False)  # As TFDS's BuilderConfig.
class ResizedConfig(tfds.core.BuilderConfig):
  """A config of the resized builder: its images are `size` x `size`."""

  size: int = 32


class ResizedBuilder(
    variant_splits.VariantSplits, imagenet2012_local_dataset_builder.Builder
):
  """ImageNet downsampled to 8x8, 16x16, 32x32 or 64x64, as TFDS `imagenet_resized`."""

  VARIANT_SPLITS = _SPLITS

  name = 'imagenet2012_local_resized'
  VERSION = _VERSION
  RELEASE_NOTES = {
      '0.1.0': (
          'The examples of upstream imagenet_resized 0.1.0, downsampled from'
          ' the archives as the paper did, with its label order shipped.'
      ),
  }
  BUILDER_CONFIGS = [
      ResizedConfig(
          name=f'{size}x{size}',
          description=f'Images resized to {size}x{size}',
          version=_VERSION,
          size=size,
      )
      for size in (8, 16, 32, 64)  # Upstream's configs.
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.size
    # Not dataset_info_from_configs: the package's CITATIONS.bib (ImageNet's)
    # would prevail over the paper's.
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.get_metadata().description,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(size, size, 3)),  # PNG.
            'label': tfds.features.ClassLabel(
                names_file=resized_layout.LABELS_FILE
            ),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://patrykchrabaszcz.github.io/Imagenet32/',
        citation=_CITATION,
        metadata=tfds.core.MetadataDict(),
    )

  def _layout(
      self, sources: Mapping[str, source_lib.Source]
  ) -> resized_layout.ResizedLayout:
    return resized_layout.ResizedLayout(
        self, sources, self.builder_config.size, self._label_order()
    )

  def _label_order(self) -> tuple[int, ...]:
    return resized_layout.label_order(labels.class_names_file().read_text().split())

  def _generate_examples(
      self, source: source_lib.Source
  ) -> Iterator[tuple[str, Mapping[str, object]]]:
    """TFDS's generator path: the main builder's examples, downsampled."""
    order = self._label_order()
    for key, example in super()._generate_examples(source):
      yield key, resized_layout.resized_features(
          example['image'],
          example['label'],
          example['file_name'],
          self.builder_config.size,
          order,
      )
