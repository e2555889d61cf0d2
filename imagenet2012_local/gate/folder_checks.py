"""What "checked" means for a folder of extracted images.

A folder has no digest to compare: a file lost or cut short in extracting or
copying changes no checksum anyone published. What can be checked is: every
entry is an image of the split, named as in the archive and in its place
(`folder_source`); no file name twice (`plan.rows_by_name`); the images and
classes counted against the official archives' (`archive_facts`); and every
image read by a decoder as its shard is written (`image_fixes`), which fails
the build on one that is not. The status says exactly that, and never
"verified", which is the archives' word for a matching digest.
"""

from __future__ import annotations

import logging

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import archive_index

_log = logging.getLogger(__name__)


class FolderCheck:
  """The gate's view of one split's folder (see `source.Check`)."""

  needs_hashing = False

  def __init__(self, folder: str, layout: str, split: str):
    self.path = folder
    self._layout = layout
    self._split = split
    self.size = 0
    self._images = 0
    self._classes = 0
    self.status = 'not listed yet'

  def counted(self, index: archive_index.ArchiveIndex) -> None:
    """Counts the listed images and classes against the archives' and sets
    the status; a count that differs is logged, not refused (part of
    ImageNet builds, as from a partial archive)."""
    self.size = int(index.sizes.sum())
    self._images = len(index)
    self._classes = len(index.class_dirs)
    counts = [_counted(self._images, archive_facts.IMAGES_PER_SPLIT[self._split], 'images')]
    if self._split == 'train':
      counts.append(_counted(self._classes, archive_facts.NUM_CLASSES, 'classes'))
    if self._images != archive_facts.IMAGES_PER_SPLIT[self._split]:
      _log.warning('%s: %s.', self.path, counts[0])
    self.status = 'checked, not verified (a folder has no digest): ' + '; '.join(
        counts + ['no file name twice', 'every image read by a decoder']
    )

  def summary(self) -> dict[str, object]:
    """The folder, its layout, bytes and counts, and the status."""
    return {
        'folder': self.path,
        'layout': self._layout,
        'bytes': self.size,
        'images': self._images,
        'classes': self._classes,
        'status': self.status,
    }


def _counted(found: int, official: int, what: str) -> str:
  if found == official:
    return f'{found:,} {what}, as in the archives'
  return f'{found:,} {what}, of the archives\' {official:,}'
