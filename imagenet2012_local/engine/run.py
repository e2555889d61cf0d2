"""The build: index the archives, plan the shards, write them, check digests.

Every layout goes through `write_all`: the TFDS builder (`tfds_layout`, on
this machine or on Beam workers) and the classic-layout build. Archive digests
are computed on a background thread from the end of indexing to the last
shard; a wrong one fails the build before anything is published.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable, Mapping


from imagenet2012_local.sources import archive_index
from imagenet2012_local.gate import disk_space
from imagenet2012_local.engine import in_order_writer
from imagenet2012_local.engine import memory
from imagenet2012_local.engine import plan
from imagenet2012_local.engine import resume
from imagenet2012_local.engine import shard_writer
from imagenet2012_local.sources import source as source_lib
from imagenet2012_local.gate import verification
from imagenet2012_local.engine import worker_pool
from imagenet2012_local.sources import storage

# Plans one split from its source and index: a layout's shard policy, e.g.
# shard policy, or the classic layout's fixed shard counts.
Planner = Callable[
    [source_lib.Source, archive_index.ArchiveIndex], list[plan.ShardTask]
]

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Written:
  """What a build wrote, per split."""

  results: list[shard_writer.ShardResult]  # One per shard, in task order.
  skipped_members: dict[str, dict[str, str]]  # split -> {member: why}

  def of_split(self, split: str) -> list[shard_writer.ShardResult]:
    """The split's shard results, in shard order."""
    return sorted((r for r in self.results if r.split == split), key=lambda r: r.index)

  def fixed_and_skipped(self, split: str) -> tuple[dict[str, str], dict[str, str]]:
    """{file name: why} of the split's fixed images and of its skipped ones."""
    fixed, skipped = {}, {}
    for result in self.of_split(split):
      fixed.update(result.fixed_images)
      skipped.update(result.skipped_images)
    return fixed, skipped


def write_all(
    sources: Mapping[str, source_lib.Source],
    planner: Planner,
    layout: shard_writer.Layout,
    skip_bad_images: bool,
    kept: resume.KeptShards,
    map_fn: shard_writer.MapFn = map,
) -> Written:
  """Indexes, plans and writes every split; raises before returning if any
  archive's digest is wrong.

  Args:
    sources: the splits to build.
    planner: plans a split's shards from its index.
    layout: names, encodes and writes the shard files.
    skip_bad_images: leave out images no decoder reads, instead of failing.
    kept: the kept-shards folder that makes the build resumable; shards are
      put at the layout's paths only once all are written and checked.
    map_fn: runs shard writing and, on worker processes or for archives in
      cloud storage, indexing (`_index_map`); builtin `map` runs them here,
      one after another.
  """
  skipped_members = {split: {} for split in sources}
  checks = (source.check for source in sources.values())
  # Digests start once indexing is done. Beside the digest's sequential
  # reads, the index's 512-byte ones would wait in the disk's queue, and the
  # writing waits for the index; beside the writing, the digest
  # (`direct_reads`: little CPU) is hidden.
  tasks = []
  for split, source in sources.items():
    index = source.index(
        map_fn=_index_map(source, map_fn),
        skipped=skipped_members[split],
    )
    memory.release_freed_heap()  # Indexing's and the index cache's buffers.
    tasks += planner(source, index)
  memory.release_freed_heap()  # The planning's.
  with (
      disk_space.full_disk_reported(kept.folder, kept.folder.parent),
      verification.BackgroundHasher(checks) as hasher,
  ):
    writer = shard_writer.ShardWriter(layout, kept, skip_bad_images, tasks)
    _say_what_is_kept(kept, [writer.kept_key(task) for task in tasks])

    def on_result(task: plan.ShardTask, result: shard_writer.ShardResult) -> None:
      kept.add_finished(*writer.kept_key(task), dataclasses.asdict(result))
      hasher.raise_if_failed()

    try:
      if _in_order(sources, layout, tasks, map_fn):
        results = in_order_writer.write_in_order(
            writer, layout, kept, skip_bad_images, tasks, on_result
        )
      else:
        results = shard_writer.write_shards(writer, tasks, map_fn, on_result)
      hasher.wait()  # Raises before anything is published if a digest is wrong.
    except verification.ChecksumError:
      kept.remove()  # Shards of a wrong archive are worth nothing.
      raise
    except BaseException as error:
      _keep_finished_despite(kept, error)
      raise
    kept.record_finished()  # A kill while publishing keeps them too.
    writer.publish(tasks)
  return Written(results, skipped_members)


def _in_order(
    sources: Mapping[str, source_lib.Source],
    layout: shard_writer.Layout,
    tasks: list[plan.ShardTask],
    map_fn: shard_writer.MapFn,
) -> bool:
  """Whether to write the shards from one read of each archive in order
  (`in_order_writer`, in this process) instead of reading images by offset:
  where the layout and the index allow it, the shards are written on this
  machine, and the disk makes reads by offset the dearer (`disk_probe`)."""
  on_this_machine = map_fn is map or isinstance(map_fn, worker_pool.WorkerPool)
  return (
      on_this_machine
      and in_order_writer.usable(layout, tasks)
      and all(
          source.write_in_order() for source in sources.values()
      )
  )


def _keep_finished_despite(kept: resume.KeptShards, error: BaseException) -> None:
  """Records the finished shards for the rerun after the build failed with
  `error`; a failure to (on a full disk, likely) is logged in one line, so
  that `error`, the cause, is what the user sees."""
  try:
    kept.record_finished()
  except Exception as e:  # pylint: disable=broad-except
    _log.warning(
        'After %s, the finished shards could not be recorded in %s for the'
        ' rerun (%s: %s); it writes them again.',
        type(error).__name__, kept.folder, type(e).__name__, e,
    )


def _say_what_is_kept(
    kept: resume.KeptShards, names_and_keys: list[tuple[str, str]]
) -> None:
  count, num_bytes = kept.count(names_and_keys)
  if count:
    print(
        f'resuming: {count} of {len(names_and_keys)} shards kept from an'
        f' interrupted build ({num_bytes / 1e9:.1f} GB) in {kept.folder}',
        file=sys.stderr,
    )


def _index_map(
    source: source_lib.Source, map_fn: shard_writer.MapFn
) -> shard_writer.MapFn | None:
  """`map_fn` where it should index `source`: worker processes always,
  Beam's where `index_on_workers`; None: the source indexes it here."""
  if map_fn is map:
    return None
  if isinstance(map_fn, worker_pool.WorkerPool) or index_on_workers(source.name):
    return map_fn
  return None


def index_on_workers(name: str) -> bool:
  """Whether workers should index the input `name`: in object storage each
  tar header is a round trip, so workers read them in parallel; a local disk
  reads them in under a second per GB, less than a pipeline takes to start."""
  return storage.is_remote(name)
