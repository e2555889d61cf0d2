"""What a benchmark archive set holds: classes, images per class, val images.

Three kinds: a seeded sample of classes with the same number of ~110 KB images
each (sized in bytes like a slice of ImageNet); the full-count set (every
one of ImageNet's 1,281,167 train and 50,000 val images, but tiny), which
measures per-image costs and memory at the real image count in ~2.6 GB; and
the subset-names set (`with_subset_names`), whose train archive holds every
image SimCLR's 1 % and 10 % lists name, so that the subset builder can build
from it.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence

import tensorflow_datasets as tfds

from imagenet2012_local.variants import variant_files

FULL_TRAIN_IMAGES = 1_281_167
FULL_VAL_IMAGES = 50_000
# Most ImageNet classes have 1,300 train images; the rest have fewer (down to
# 732). The full-count set takes the 18,833 missing images from this many
# classes, a seeded sample, unevenly.
_MOST_PER_CLASS = 1300
_SHORT_CLASSES = 200
# The 10 % list names 128 or 129 images of each class (the 1 % list, 12 or 13,
# all among them); a class needs at least that many.
_MOST_LISTED_PER_CLASS = 129


@dataclasses.dataclass(frozen=True)
class ArchiveSpec:
  """One archive configuration; `name` is the directory it is written to."""

  name: str
  # wnid -> the file numbers n of its images `<wnid>_<n>.JPEG` (the writer
  # shuffles classes and images, seeded).
  train_images: Mapping[str, Sequence[int]]
  val_images: int
  seed: int  # Makes images, class sample, counts and member order.
  # 'photo' (~110 KB), 'small' (~21 KB) or 'tiny' (~1 KB): archives.py's pools.
  image_size: str

  @property
  def num_images(self) -> int:
    return self.num_train_images + self.val_images

  @property
  def num_train_images(self) -> int:
    return sum(len(numbers) for numbers in self.train_images.values())

  def train_names(self) -> set[str]:
    """Every train image's file name."""
    return {
        f'{wnid}_{n}.JPEG'
        for wnid, numbers in self.train_images.items()
        for n in numbers
    }


def all_wnids() -> list[str]:
  """ImageNet 2012's 1,000 class wnids, sorted (TFDS's labels.txt)."""
  path = tfds.core.tfds_path('datasets/imagenet2012/labels.txt')
  return path.read_text().split()


def sampled(
    classes: int, images_per_class: int, val: int, seed: int
) -> ArchiveSpec:
  """`classes` seeded wnids of `images_per_class` ~110 KB images, `val` val."""
  wnids = sorted(random.Random(seed).sample(all_wnids(), classes))
  return ArchiveSpec(
      name=f'archives-{classes}x{images_per_class}-{val}-s{seed}',
      train_images=dict.fromkeys(wnids, range(1, images_per_class + 1)),
      val_images=val,
      seed=seed,
      image_size='photo',
  )


def full_count(seed: int) -> ArchiveSpec:
  """All 1,000 classes, 1,281,167 train and 50,000 val images, tiny ones."""
  wnids = all_wnids()
  rng = random.Random(seed)
  counts = dict.fromkeys(wnids, _MOST_PER_CLASS)
  short = rng.sample(wnids, _SHORT_CLASSES)
  # Squared uniform weights: most short classes lose a few dozen images, a
  # few lose hundreds, as in ImageNet.
  weights = [rng.random() ** 2 for _ in short]
  missing = len(wnids) * _MOST_PER_CLASS - FULL_TRAIN_IMAGES
  for wnid in rng.choices(short, weights, k=missing):
    counts[wnid] -= 1
  return ArchiveSpec(
      name=f'archives-fullcount-s{seed}',
      train_images={wnid: range(1, n + 1) for wnid, n in counts.items()},
      val_images=FULL_VAL_IMAGES,
      seed=seed,
      image_size='tiny',
  )


def listed_numbers(config: str) -> dict[str, list[int]]:
  """The file numbers SimCLR's list `config` ('1pct', '10pct') names, by
  wnid, each class's sorted."""
  numbers: dict[str, list[int]] = {}
  for name in variant_files.subset_names(config):
    wnid, number = name.decode().removesuffix('.JPEG').split('_')
    numbers.setdefault(wnid, []).append(int(number))
  return {wnid: sorted(found) for wnid, found in numbers.items()}


def with_subset_names(images_per_class: int, val: int, seed: int) -> ArchiveSpec:
  """All 1,000 classes of `images_per_class` ~21 KB images: each class's
  images of the 10 % list (so of the 1 % list too), then the lowest unlisted
  numbers; `val` val images.

  The subset builder fails unless the train archive holds every listed image,
  of all 1,000 classes (128,116 of the 10 % list), so this set cannot be a
  sample of classes; its images are ~1/5 of a photo's size so that 350 a
  class (the 10 % subset ~37 % of train, the 1 % ~3.7 %) fit in ~8 GB.
  """
  if images_per_class < _MOST_LISTED_PER_CLASS:
    raise ValueError(
        f'the 10 % list names up to {_MOST_LISTED_PER_CLASS} images of a'
        f' class: images_per_class must be at least that, not'
        f' {images_per_class}'
    )
  listed = listed_numbers('10pct')
  train = {}
  for wnid in all_wnids():
    numbers = list(listed[wnid])
    taken = set(numbers)
    unlisted = (n for n in range(1, 10**6) if n not in taken)
    numbers += [next(unlisted) for _ in range(images_per_class - len(numbers))]
    train[wnid] = numbers
  return ArchiveSpec(
      name=f'archives-subsets-1000x{images_per_class}-{val}-s{seed}',
      train_images=train,
      val_images=val,
      seed=seed,
      image_size='small',
  )
