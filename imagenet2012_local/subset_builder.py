"""imagenet2012_local_subset: TFDS `imagenet2012_subset` (1pct, 10pct) from the archives.

A drop-in for upstream's 5.0.0: the same features as `imagenet2012_local`,
`train` exactly the images of SimCLR's 1 % or 10 % list (12,811 or 128,116;
shipped in `variant_data/`, nothing downloaded) and `validation` all of it.
Train's index is filtered to the listed images before planning, so the build
reads and writes only those; the planning, reading, fixes, checks, resume
and publishing are the main builder's.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import archive_index
from imagenet2012_local import errors
from imagenet2012_local import imagenet2012_local_dataset_builder
from imagenet2012_local.engine import plan
from imagenet2012_local.variants import variant_files
from imagenet2012_local.variants import variant_splits
from imagenet2012_local.sources import source as source_lib

_SPLITS = (archive_facts.TRAIN.split, archive_facts.VALIDATION.split)
# Missing images named in the error: enough to recognise a pattern (a class,
# a renamed file), few enough for one line.
_NAMES_SHOWN = 5
_VERSION = tfds.core.Version('5.0.0')  # Upstream imagenet2012_subset's.


class MissingSubsetImagesError(errors.Imagenet2012LocalError, ValueError):
  """The train archive lacks images that the subset lists."""


class SubsetBuilder(
    variant_splits.VariantSplits, imagenet2012_local_dataset_builder.Builder
):
  """A class-balanced 1 % or 10 % of ImageNet's train, as TFDS `imagenet2012_subset`."""

  VARIANT_SPLITS = _SPLITS

  name = 'imagenet2012_local_subset'
  VERSION = _VERSION
  RELEASE_NOTES = {
      '5.0.0': (
          'The examples of upstream imagenet2012_subset 5.0.0, read straight'
          ' from the archives, with the subset lists shipped.'
      ),
  }
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(
          name=config,
          description=f'{config} of the ImageNet train set (SimCLR\'s list).',
          version=_VERSION,
      )
      for config in variant_files.SUBSET_FILES
  ]

  def _plan_split(
      self, source: source_lib.Source, index: archive_index.ArchiveIndex
  ) -> list[plan.ShardTask]:
    """Train: the listed images only, planned as a split of their own."""
    if source.split == archive_facts.TRAIN.split:
      index = index.take(self._listed_rows(source, index))
    return super()._plan_split(source, index)

  def _listed_rows(
      self, source: source_lib.Source, index: archive_index.ArchiveIndex
  ) -> np.ndarray:
    """The rows of train's `index` that the subset lists.

    Raises:
      MissingSubsetImagesError: the archive lacks some listed image.
    """
    listed = variant_files.subset_names(self.builder_config.name)
    rows = np.flatnonzero(np.isin(index.names, listed))
    missing = np.setdiff1d(listed, index.names[rows])
    if len(missing):
      shown = ', '.join(name.decode() for name in missing[:_NAMES_SHOWN])
      raise MissingSubsetImagesError(errors.two_lines(
          f'{source.name} lacks {len(missing):,} of the {len(listed):,} images'
          f' of the {self.builder_config.name} subset, e.g. {shown}',
          f'The subset is exactly these images, from all 1,000 classes: build'
          f' it from the official {archive_facts.TRAIN.file_name}.',
      ))
    return rows
