"""The reference files the variant builders ship: subset lists and ReaL labels.

They lie in `variant_data/` (with their LICENSEs and a README of their
provenance and SHA-256), so building a variant downloads nothing: upstream
TFDS fetches the same files from GitHub at build time. Each is read once per
process; the largest, the 10 % list, is 2.6 MB. No TensorFlow nor TFDS
here: the ReaL layout's workers read the labels (`real_layout`).
"""

from __future__ import annotations

import functools
import json

from etils import epath
import numpy as np

from imagenet2012_local.sources import archive_facts

DATA_DIR = epath.Path(__file__).parent / 'variant_data'
# TFDS `imagenet2012_subset`'s config names, and the SimCLR file of each.
SUBSET_FILES = {
    '1pct': DATA_DIR / 'simclr_subsets' / '1percent.txt',
    '10pct': DATA_DIR / 'simclr_subsets' / '10percent.txt',
}
REAL_LABELS_FILE = DATA_DIR / 'reassessed_imagenet' / 'real.json'


@functools.cache
def subset_names(config: str) -> np.ndarray:
  """The sorted train file names (fixed-width UTF-8 bytes, as the archive
  index holds them) of the subset `config` ('1pct' or '10pct')."""
  names = SUBSET_FILES[config].read_text().splitlines()  # Drops a Windows '\r'.
  return np.sort(np.array([name.encode() for name in names], dtype=np.bytes_))


@functools.cache
def _real_labels() -> tuple[tuple[int, ...], ...]:
  """The ReaL labels of validation images 1 to 50,000: entry k-1 is image k's."""
  return tuple(tuple(entry) for entry in json.loads(REAL_LABELS_FILE.read_text()))


def real_labels(file_name: str) -> tuple[int, ...]:
  """The ReaL labels (class numbers, in the file's order; empty where the
  raters agreed on none) of validation image `file_name`, looked up by the
  number in its name as the original labels are: entry k-1 labels
  ILSVRC2012_val_<k>, wherever the image lies in the archive.

  `file_name` must have had its original label looked up
  (`labels.split_labels`, while planning): that checks the name and that its
  number is within the 50,000 labels, as many as the ReaL file has.
  """
  number = archive_facts.VALIDATION_IMAGES.pattern.fullmatch(file_name).group(1)
  return _real_labels()[int(number) - 1]
