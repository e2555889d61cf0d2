"""The input seam: what one split's input is to the rest of the build.

A build's output side is a `Layout` (how shards look); its input side is a
`Source` per split: the tars as downloaded (`tar_source`) or a folder of
extracted images in one of the layouts users have (`folder_source`), on a
local disk or in object storage (`storage`). A source finds its images,
checks them (its `check`, the gate's view of it), indexes them as columns
(`archive_index.ArchiveIndex`), labels them, and hands out an `ImageReader`:
the small, picklable object that travels with each shard's task to a worker
process or a Beam worker and reads that shard's images.

The plan, the resume keys, the gate and the index cache speak to these two
protocols only; nothing downstream asks whether an image lies in a tar at an
offset or in a file of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Protocol

import numpy as np

from imagenet2012_local.sources import archive_index

# Maps a function over units of work (worker processes, Beam), like `map`.
MapFn = Callable[..., Iterable]


class ImageReader(Protocol):
  """Reads a shard's images; pickled into every task, so it holds only names
  and numbers (paths, reads in flight), never open files or clients."""

  # What messages and resume keys call the input: an archive's path, a folder.
  name: str

  def read(self, images: archive_index.ArchiveIndex) -> Iterator[bytes]:
    """The bytes of each image of `images`, in its order."""

  def identity(self) -> dict[str, object]:
    """JSON-ready; changes whenever any image's bytes may have changed."""

  def how_to_replace(self, file_name: str) -> str:
    """What to tell a user whose image `file_name` no decoder reads."""


class Check(Protocol):
  """The gate's view of a source (`verification.ArchiveCheck` for a tar,
  `folder_checks.FolderCheck` for a folder)."""

  status: str  # What was checked, in words, for the metadata and summary.
  size: int  # Bytes of input: for the free-space check and progress.
  needs_hashing: bool  # Whether `verification.BackgroundHasher` reads it.

  def summary(self) -> dict[str, object]:
    """The metadata's record of the input and its checks."""


class Source(Protocol):
  """One split's input."""

  split: str
  name: str  # The archive's path or the split's folder, for messages.
  check: Check
  # Where the metadata records the input: ('archives', file name) for a tar,
  # ('folders', split) for a folder.
  metadata_key: tuple[str, str]

  def index(
      self, skipped: MutableMapping[str, str], map_fn: MapFn | None = None
  ) -> archive_index.ArchiveIndex:
    """Every image of the split; `skipped` receives {entry: why} of entries
    that are not images."""

  def labels(self, index: archive_index.ArchiveIndex) -> np.ndarray:
    """The class number of each image of `index`; -1 in the test split."""

  def write_in_order(self) -> bool:
    """Whether to write the shards from one read of the input in order, in
    place (`in_order_writer`): a local tar on a disk that seeks slowly."""

  def reader(self) -> ImageReader:
    """The reader of this split's images (after `index`)."""
