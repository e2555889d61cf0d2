"""Resuming an interrupted build: finished shards are kept, checked and reused.

A full build writes ~1,200 shards over many minutes; a killed process, a
preempted VM or a full disk would throw them all away. Shards are written
into a kept-shards folder instead, beside the dataset's version folder, and
linked into the build's output only once every shard is written and every
digest checked. A rerun of the same build reuses what it finds there.

On disk, `<version dir>.interrupted-build/` (e.g.
`~/tensorflow_datasets/imagenet2012_local/5.1.0.interrupted-build/`):
- `README.txt`: says what the folder is and that it may be deleted;
- `<shard file name>.partial`: a shard being written, and its layout's
  companions (e.g. the classic layout's `dali_idx/<shard file name>.partial.idx`);
- `<shard file name>`: a finished shard, renamed from `.partial`, and its
  companions, renamed likewise;
- `<shard file name>.kept.json`: written atomically (temporary file, rename)
  once the shard is flushed to disk (its own fsync on Beam workers, or one
  `sync` per GB of finished shards, on a thread of its own, in other
  builds): `{"plan": <hex SHA-256 of what the shard is made of>, "file":
  <the shard's storage.file_identity>, "result": <shard_writer.ShardResult
  fields>}`.
It is not a version folder, so `tfds.load` never reads it; the build removes
it when it succeeds.

A kept shard is reused only when its record's plan key equals the one the
build computes (`plan_key`: output format version, layout, the input's name
and identity (`source.ImageReader`: an archive's `storage.file_identity`, a
folder's listing), split, shard index and count, every image's name,
offset, size and label, the skip-bad-images setting), the file still has the
recorded identity, and the record's result has exactly `ShardResult`'s fields
and types, with `num_bytes` the file's size. Its bytes are not re-read: on a
cold disk that costs about as much as writing the shard again, and any write
to the file, even one whose modification time is set back, changes its
identity (its inode change time). A record that fails any of these checks is
ignored (said once, for a damaged or changed one: `state_files`), and its
shard written again. The archives' digests are checked again by the resumed
build unless they were remembered as verified (`verification`): an
interrupted digest starts over, since a hash's state cannot be saved.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Sequence

from etils import epath

from imagenet2012_local.engine import plan
from imagenet2012_local.gate import protected_paths
from imagenet2012_local import settings
from imagenet2012_local.engine import state_files
from imagenet2012_local.sources import storage

# Bump whenever a change to the code changes the bytes of a shard.
OUTPUT_FORMAT_VERSION = 1
FOLDER_SUFFIX = '.interrupted-build'
_RECORD_SUFFIX = '.kept.json'
_README = """\
Shards of an interrupted build, kept so that rerunning the same build resumes
it instead of starting over. Safe to delete; a successful build removes it.
"""


@dataclasses.dataclass(frozen=True)
class Kept:
  """A kept shard that the build may reuse: where it is, and its result."""

  path: epath.Path
  result: dict[str, object]


def plan_key(task: plan.ShardTask, layout: str, skip_bad_images: bool) -> str:
  """The SHA-256 of everything a shard's bytes depend on (see the module doc)."""
  digest = hashlib.sha256()
  header = {
      'format': OUTPUT_FORMAT_VERSION,
      'layout': layout,
      'skip_bad_images': skip_bad_images,
      'input': task.reader.name,
      'input_identity': task.reader.identity(),
      'split': task.split,
      'shard': [task.index, task.num_shards],
  }
  digest.update(json.dumps(header, sort_keys=True).encode())
  images = task.images
  for column in (images.names, images.offsets, images.sizes, task.labels):
    digest.update(column.tobytes())
  return digest.hexdigest()


class KeptShards:
  """The kept-shards folder of one build (see the module docstring)."""

  def __init__(self, folder: epath.PathLike, flush_in_batches: bool = False):
    """The folder `folder`.

    Args:
      folder: where shards are kept.
      flush_in_batches: flush finished shards to disk together, with one
        `sync` once `settings.sync_every_bytes()` of them wait, and record
        them then, instead of one flush per shard; for builds whose shard
        results reach the build's process as each shard is finished (in it,
        or on its `worker_pool`), which calls `add_finished` for each and
        `record_finished` before it ends. A batch is flushed on a thread of
        its own, so the build goes on handing out shards meanwhile: done in
        the build's thread, each `sync` would leave every worker idle once
        it finished its shard.
    """
    self.folder = epath.Path(folder)
    self._flush_in_batches = flush_in_batches
    self._unrecorded: list[tuple[str, dict[str, object]]] = []
    self._unrecorded_bytes = 0
    self._sync_every = settings.sync_every_bytes()
    self._flushing: threading.Thread | None = None  # The batch being flushed.
    self._flush_error: BaseException | None = None

  def partial_path(self, shard_name: str) -> epath.Path:
    """Where a shard is written before it is finished."""
    self.folder.mkdir(parents=True, exist_ok=True)
    readme = self.folder / 'README.txt'
    if not readme.exists():
      readme.write_text(_README)
    # A record of an older shard of that name no longer holds.
    self._record_path(shard_name).unlink(missing_ok=True)
    return self.folder / f'{shard_name}.partial'

  def reusable(self, shard_name: str, key: str) -> Kept | None:
    """The kept shard of that name, if it is the one `key` describes and its
    record checks out against its file (see the module docstring)."""
    record_path = self._record_path(shard_name)
    record = state_files.load_json(record_path, _is_record)
    if record is None or record['plan'] != key:
      return None  # None kept, or of another plan: written again.
    path = self.folder / shard_name
    try:
      identity = storage.file_identity(path)
    except OSError:
      return None
    if identity != record['file']:
      state_files.discard(record_path, 'its shard changed since it was recorded')
      return None
    if record['result']['num_bytes'] != identity['bytes']:
      state_files.discard(record_path, "its result's size is not its shard's")
      return None
    return Kept(path, record['result'])

  def finish(
      self,
      shard_name: str,
      key: str,
      result: dict[str, object],
      companions: Sequence[str] = (),
  ) -> None:
    """Renames the finished `.partial` shard (and its `.partial` companions,
    e.g. an index written beside it). Flushes and records it too, unless
    shards are flushed in batches: then `add_finished` records it, in the
    build's own process, wherever the shard was written."""
    partials = [self.folder / f'{shard_name}.partial', *map(epath.Path, companions)]
    for partial in partials:
      if not self._flush_in_batches and storage.is_local(partial):
        with open(partial, 'rb+') as f:
          os.fsync(f.fileno())
      partial.replace(os.fspath(partial).replace(f'{shard_name}.partial', shard_name))
    if not self._flush_in_batches:
      self._write_record(shard_name, self._record(shard_name, key, result))

  def add_finished(self, shard_name: str, key: str, result: dict[str, object]) -> None:
    """Records a shard `finish` renamed, once it is flushed with others
    (batches only; a reused kept shard is recorded already)."""
    if not self._flush_in_batches or self.reusable(shard_name, key):
      return
    self._raise_flush_error()
    record = self._record(shard_name, key, result)
    self._unrecorded.append((shard_name, record))
    self._unrecorded_bytes += record['file']['bytes']
    if not self._sync_every:  # Each shard, at once.
      self.record_finished()
    elif self._unrecorded_bytes >= self._sync_every and not (
        self._flushing and self._flushing.is_alive()
    ):
      self._flushing = threading.Thread(
          target=self._flush, args=(self._take_unrecorded(),), name='flush-shards'
      )
      self._flushing.start()

  def _record(
      self, shard_name: str, key: str, result: dict[str, object]
  ) -> dict[str, object]:
    identity = storage.file_identity(self.folder / shard_name)
    return {'plan': key, 'file': identity, 'result': result}

  def record_finished(self) -> None:
    """Flushes the finished, unrecorded shards to disk, then records them;
    waits for a batch being flushed first, and raises its error, if any."""
    if self._flushing:
      self._flushing.join()
      self._flushing = None
    self._raise_flush_error()
    if self._unrecorded:
      self._flush(self._take_unrecorded())
      self._raise_flush_error()

  def _take_unrecorded(self) -> list[tuple[str, dict[str, object]]]:
    batch, self._unrecorded, self._unrecorded_bytes = self._unrecorded, [], 0
    return batch

  def _flush(self, batch: list[tuple[str, dict[str, object]]]) -> None:
    """Flushes to disk, then records, a batch of finished shards; an error
    (e.g. a full disk) is kept for the build's thread to raise."""
    try:
      if storage.is_local(self.folder):
        os.sync()
      for shard_name, record in batch:
        self._write_record(shard_name, record)
    except BaseException as e:  # pylint: disable=broad-except
      self._flush_error = e

  def _raise_flush_error(self) -> None:
    if self._flush_error:
      error, self._flush_error = self._flush_error, None
      raise error

  def _record_path(self, shard_name: str) -> epath.Path:
    return self.folder / f'{shard_name}{_RECORD_SUFFIX}'

  def _write_record(self, shard_name: str, record: dict[str, object]) -> None:
    tmp = self.folder / f'{shard_name}{_RECORD_SUFFIX}.partial'
    try:
      tmp.write_text(json.dumps(record, sort_keys=True))
      tmp.replace(self._record_path(shard_name))
    except BaseException:
      tmp.unlink(missing_ok=True)  # Half a record (a full disk) helps no rerun.
      raise

  def count(self, names_and_keys: Sequence[tuple[str, str]]) -> tuple[int, int]:
    """How many of the shards are reusable, and their bytes."""
    kept = [self.reusable(name, key) for name, key in names_and_keys]
    found = [k for k in kept if k is not None]
    return len(found), sum(k.result['num_bytes'] for k in found)

  def publish(self, source: str, destination: str) -> None:
    """Puts a kept file at `destination`: a hard link where possible, so the
    kept copy stays until the whole build has succeeded."""
    epath.Path(destination).parent.mkdir(parents=True, exist_ok=True)
    if storage.is_local(source) and storage.is_local(destination):
      before = storage.file_identity(source)
      try:
        os.link(source, destination)
      except OSError:
        pass  # Another file system: copy.
      else:
        self._follow_link(epath.Path(source), before)
        return
    epath.Path(source).copy(destination, overwrite=True)

  def _follow_link(self, shard: epath.Path, before: dict[str, int | float]) -> None:
    """Records a kept shard's new identity after `publish` linked it (a link
    sets its inode change time), if its record held the one `before` it, so
    that a build killed while publishing still resumes from it."""
    if shard.parent != self.folder:
      return  # A companion (e.g. an index): it has no record.
    record = state_files.load_json(self._record_path(shard.name), _is_record)
    if record is not None and record['file'] == before:
      self._write_record(
          shard.name, {**record, 'file': storage.file_identity(shard)}
      )

  def remove(self, inputs: Sequence[epath.PathLike] = ()) -> None:
    """Deletes the folder (the build it served has succeeded, or starts
    afresh), unless it is, holds or is inside one of `inputs`, the folders
    of the build's archives (`protected_paths`)."""
    protected_paths.delete(self.folder, inputs)


def _is_record(value: object) -> bool:
  """Whether `value` has the shape `KeptShards._record` writes."""
  return (
      isinstance(value, dict)
      and value.keys() == {'plan', 'file', 'result'}
      and isinstance(value['plan'], str)
      and isinstance(value['file'], dict)
      and _is_shard_result(value['result'])
  )


def _is_shard_result(value: object) -> bool:
  # Here, not at the top: shard_writer imports this module.
  from imagenet2012_local.engine import shard_writer  # pylint: disable=import-outside-toplevel

  return state_files.has_fields_of(value, shard_writer.ShardResult)
