"""What a benchmark archive set holds: classes, images per class, val images.

Two kinds: a seeded sample of classes with the same number of ~110 KB images
each (sized in bytes like a slice of ImageNet), and the full-count set (every
one of ImageNet's 1,281,167 train and 50,000 val images, but tiny), which
measures per-image costs and memory at the real image count in ~2.6 GB.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping

import tensorflow_datasets as tfds

FULL_TRAIN_IMAGES = 1_281_167
FULL_VAL_IMAGES = 50_000
# Most ImageNet classes have 1,300 train images; the rest have fewer (down to
# 732). The full-count set takes the 18,833 missing images from this many
# classes, a seeded sample, unevenly.
_MOST_PER_CLASS = 1300
_SHORT_CLASSES = 200


@dataclasses.dataclass(frozen=True)
class ArchiveSpec:
  """One archive configuration; `name` is the directory it is written to."""

  name: str
  train_images: Mapping[str, int]  # wnid -> images, in the order written.
  val_images: int
  seed: int  # Makes images, class sample, counts and member order.
  tiny_images: bool  # ~1 KB JPEGs instead of ~110 KB ones.

  @property
  def num_images(self) -> int:
    return sum(self.train_images.values()) + self.val_images


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
      train_images=dict.fromkeys(wnids, images_per_class),
      val_images=val,
      seed=seed,
      tiny_images=False,
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
      train_images=counts,
      val_images=FULL_VAL_IMAGES,
      seed=seed,
      tiny_images=True,
  )
