"""Class names, and the classes a split lacks or is short of."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from imagenet2012_local.report.scan import SplitScan

_NO_LABEL = 'no label'


@dataclasses.dataclass(frozen=True)
class ClassNames:
  """Wnids by label, and the devkit's words for them when the build had it."""

  wnids: Sequence[str]
  words: Mapping[str, str]

  @property
  def num_classes(self) -> int:
    return len(self.wnids)

  def full(self, label: int) -> str:
    """'n01440764 (tench, Tinca tinca)', or the wnid alone without words."""
    if label < 0:
      return _NO_LABEL
    wnid = self.wnids[label]
    return f'{wnid} ({self.words[wnid]})' if wnid in self.words else wnid

  def short(self, label: int) -> str:
    """The first of the class's words ('tench'), else its wnid; for captions."""
    if label < 0:
      return _NO_LABEL
    wnid = self.wnids[label]
    return self.words[wnid].split(',')[0] if wnid in self.words else wnid


@dataclasses.dataclass(frozen=True)
class ClassStats:
  """Examples per class of a labelled split, and the classes that stand out."""

  split: str
  counts: np.ndarray
  median: float
  threshold: float  # Classes with fewer examples (but not none) are short.
  missing: np.ndarray  # Labels with no example.
  short: np.ndarray

  @classmethod
  def of(cls, scan: SplitScan, short_fraction: float) -> ClassStats:
    """The stats of `scan`, short meaning under `short_fraction` of the median."""
    counts = np.asarray(scan.class_counts)
    median = float(np.median(counts))
    threshold = short_fraction * median
    return cls(
        split=scan.split,
        counts=counts,
        median=median,
        threshold=threshold,
        missing=np.flatnonzero(counts == 0),
        short=np.flatnonzero((counts > 0) & (counts < threshold)),
    )
