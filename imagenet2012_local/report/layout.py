"""The files of a report folder, named in one place.

`imagenet2012-local report --out DIR` writes into DIR:

- `summary.md`: the Markdown summary, which links the pictures below;
- `<split>_sample.png`: a contact sheet of a seeded random sample of the split;
- `<split>_fixed.png`: every image of the split that the build re-encoded, as
  stored; only for splits that have such images;
- `class_counts.png`: examples per class, one panel per labelled split; only
  when some split is labelled;
- `image_sizes.png`: histograms of width, height and stored size per split.

Every PNG is rendered by matplotlib's Agg backend at `DPI` pixels per inch.
"""

from __future__ import annotations

SUMMARY_FILE = 'summary.md'
CLASS_COUNTS_FILE = 'class_counts.png'
IMAGE_SIZES_FILE = 'image_sizes.png'
DPI = 100


def sample_file(split: str) -> str:
  """The contact sheet of the split's random sample."""
  return f'{split}_sample.png'


def fixed_file(split: str) -> str:
  """The contact sheet of the split's images that the build fixed."""
  return f'{split}_fixed.png'
