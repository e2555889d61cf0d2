"""The tars as downloaded, as a `source.Source`: one split's archive.

Its images are indexed from the tar headers (`archive_index`, or in one
read in order with the digest, `in_order_index`), remembered between builds
of the same file (`index_cache`), and read by offset (`image_reads`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, MutableMapping

import numpy as np

from imagenet2012_local.engine import disk_probe
from imagenet2012_local.gate import verification
from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import archive_index
from imagenet2012_local.sources import image_reads
from imagenet2012_local.sources import in_order_index
from imagenet2012_local.sources import index_cache
from imagenet2012_local.sources import labels
from imagenet2012_local.sources import source
from imagenet2012_local.sources import storage
from imagenet2012_local.sources import tar_reader


@dataclasses.dataclass(frozen=True)
class TarImages:
  """Reads images by offset from one archive (see `source.ImageReader`)."""

  path: str
  reads_in_flight: int

  @property
  def name(self) -> str:
    return self.path

  def read(self, images: archive_index.ArchiveIndex) -> Iterator[bytes]:
    return image_reads.read_images(self.path, images.images(), self.reads_in_flight)

  def identity(self) -> dict[str, object]:
    return storage.file_identity(self.path)

  def how_to_replace(self, file_name: str) -> str:
    return f'Download {storage.name_of(self.path)} again'


@dataclasses.dataclass(frozen=True)
class TarSource:
  """One split's archive, its checksum gate, and how its images get labels."""

  archive: archive_facts.Archive
  check: verification.ArchiveCheck
  validation_labels: labels.ValidationLabels | None
  class_names: tuple[str, ...]  # The sorted wnids: label N is class_names[N].
  reads_in_flight: int
  read_order: str  # The setting: auto (`disk_probe` decides), by-offset, in-order.

  @property
  def split(self) -> str:
    return self.archive.split

  @property
  def name(self) -> str:
    return str(self.check.path)

  def write_in_order(self) -> bool:
    """Whether to write the shards from one read of the archive in order:
    a local one, on a disk where that costs less (`disk_probe`)."""
    return storage.is_local(self.name) and disk_probe.write_in_order(
        self.name, self.check.size, self.read_order
    )

  @property
  def metadata_key(self) -> tuple[str, str]:
    return 'archives', self.archive.file_name

  def index(
      self,
      skipped: MutableMapping[str, str],
      map_fn: source.MapFn | None = None,
  ) -> archive_index.ArchiveIndex:
    """The archive's index, remembered from an earlier build of the same
    file where there was one (`index_cache`).

    Args:
      skipped: receives {member: why} for each member that is not an image.
      map_fn: maps over groups of train's inner tars (`archive_index.index_archive`).
    """
    remembered = index_cache.load(self.check.path)
    if remembered is not None:
      index, were_skipped = remembered
    else:
      were_skipped = {}
      index = in_order_index.index_and_hash(
          self.check, self.archive, were_skipped, self.read_order
      )
      if index is None:
        index = archive_index.index_archive(
            self.check.path, self.archive, skipped=were_skipped, map_fn=map_fn
        )
      index_cache.save(self.check.path, index, were_skipped)
    skipped.update(were_skipped)
    return index

  def labels(self, index: archive_index.ArchiveIndex) -> np.ndarray:
    """The class number of each image of `index`; -1 in the test split."""
    return labels.split_labels(
        self.split, index, self.class_names, self.validation_labels
    )

  def reader(self) -> TarImages:
    return TarImages(self.name, self.reads_in_flight)


def tar_sources(
    manual_dir: str,
    present: list[archive_facts.Archive],
    verify_checksums: bool,
    validation_labels: labels.ValidationLabels | None,
    class_names: tuple[str, ...],
    reads_in_flight: int | None,
    read_order: str,
) -> dict[str, TarSource]:
  """The sources of the archives `present` in `manual_dir`, sizes checked.

  Raises:
    verification.ChecksumError: an archive has a size no known copy has.
    tar_reader.ArchiveError: an archive is not a whole number of tar blocks.
  """
  sources = {}
  for archive in present:
    path = storage.join(manual_dir, archive.file_name)
    check = verification.ArchiveCheck(path, verify_checksums)
    tar_reader.check_tar_size(check.path, check.size)
    sources[archive.split] = TarSource(
        archive, check, validation_labels, class_names,
        storage.reads_in_flight(path, reads_in_flight), read_order,
    )
  return sources
