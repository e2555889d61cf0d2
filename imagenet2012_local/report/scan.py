"""One pass over a split: counts, sizes and a sample, in bounded memory."""

from __future__ import annotations

import array
import dataclasses
import random
from collections.abc import Collection, Iterable
from functools import partial

import numpy as np

from imagenet2012_local.engine import image_fixes
from imagenet2012_local.report.records import Example


class Reservoir:
  """A uniform random sample of at most `size` items of a stream.

  Algorithm R: the n-th item replaces a random kept one with probability
  size/n, so every item ends up kept with the same probability.
  """

  def __init__(self, size: int, rng: random.Random):
    self.size = size
    self.items: list[Example] = []
    self._seen = 0
    self._rng = rng

  def add(self, item: Example) -> None:
    """Offers the next item of the stream."""
    self._seen += 1
    if len(self.items) < self.size:
      self.items.append(item)
      return
    slot = self._rng.randrange(self._seen)
    if slot < self.size:
      self.items[slot] = item


def _column(typecode: str) -> dataclasses.Field:
  """A dataclass field holding an empty array.array of `typecode`."""
  return dataclasses.field(default_factory=partial(array.array, typecode))


@dataclasses.dataclass
class SplitScan:
  """What one pass over a split found."""

  split: str
  class_counts: list[int]
  # Compact columns, an entry per image: stored bytes always, sides (16-bit
  # in JPEG) when the header could be read.
  sizes: array.array = _column('Q')
  widths: array.array = _column('H')
  heights: array.array = _column('H')
  num_examples: int = 0
  labelled: bool = False
  no_header: list[str] = dataclasses.field(default_factory=list)
  sample: list[Example] = dataclasses.field(default_factory=list)
  fixed: list[Example] = dataclasses.field(default_factory=list)


def scan_split(
    records: Iterable[Example],
    *,
    split: str,
    num_classes: int,
    fixed_names: Collection[str],
    samples: int,
    rng: random.Random,
) -> SplitScan:
  """Counts, sizes, a reservoir sample and the fixed images of one split."""
  scan = SplitScan(split=split, class_counts=[0] * num_classes)
  fixed_names = set(fixed_names)
  reservoir = Reservoir(samples, rng)
  for example in records:
    scan.num_examples += 1
    if example.label >= 0:
      scan.class_counts[example.label] += 1
      scan.labelled = True
    scan.sizes.append(len(example.data))
    header = image_fixes.read_jpeg_header(example.data)
    if header is None:  # Not expected after the build's fixes; reported.
      scan.no_header.append(example.file_name)
    else:
      scan.widths.append(header.width)
      scan.heights.append(header.height)
    reservoir.add(example)
    if example.file_name in fixed_names:
      scan.fixed.append(example)
  # Grouped by class, so neighbours on the sheet can be compared.
  scan.sample = sorted(reservoir.items, key=lambda e: (e.label, e.file_name))
  scan.fixed.sort(key=lambda e: e.file_name)
  return scan


def as_numpy(values: array.array) -> np.ndarray:
  """A view of a column of SplitScan (typecodes are numpy dtype codes too)."""
  return np.frombuffer(values, dtype=values.typecode)
