"""How far writing shards in order got, so that a rerun goes on from there.

Writing in order (`in_order_writer`) finishes no shard until the last
archive is read: on a disk that reads 60 MB/s, full ImageNet takes ~45
minutes, all lost to a kill without this. Every `CHECKPOINT_BYTES` of records
written, the shards and edge files are flushed to disk (`os.sync`), then
their progress is recorded; a rerun of the same build cuts the edge files
back to it and reads each archive from its first image not written.

On disk, in the kept-shards folder (`resume`): `in-order.json`, written
atomically (temporary file, rename): {"key": <hex SHA-256 of the names and
plan keys of the shards being written and the block size>, "done": {archive
path: images written, in the order they are read}, "edges": [each edge
file's length], "shards": [[records written, {fixed file name: why},
{skipped file name: why}] of each shard]}. A record that does not load, has
another shape, or another key is ignored (`state_files`): the shards are
written from the start.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence

from etils import epath

from imagenet2012_local.engine import block_writes
from imagenet2012_local.engine import state_files

# A kill loses at most this much written work; a checkpoint waits for one
# `sync` of writes the build makes anyway, ~145 times for full ImageNet's
# ~145 GB of shards.
CHECKPOINT_BYTES = 1 << 30
_FILE = 'in-order.json'


@dataclasses.dataclass
class Progress:
  """How far the writing got (see the module docstring)."""

  done: dict[str, int]
  edges: list[int] | None  # None: nothing written yet.
  shards: list[tuple[int, dict[str, str], dict[str, str]]]


def key(names_and_keys: Sequence[tuple[str, str]], block: int) -> str:
  """What a record must match to be gone on from: the same shards, planned
  the same way, written in blocks of the same size."""
  digest = hashlib.sha256(f'{block}\n'.encode())
  for name, plan_key in names_and_keys:
    digest.update(f'{name} {plan_key}\n'.encode())
  return digest.hexdigest()


def load(
    folder: epath.Path, expected_key: str, shard_files: Sequence[epath.Path]
) -> Progress | None:
  """The recorded progress for `expected_key`, over the shards being written
  to `shard_files`; None to start afresh (also where a file it describes is
  gone or shorter than it records: ignored, said in one line)."""

  def is_valid(value: object) -> bool:
    return (
        isinstance(value, dict)
        and value.keys() == {'key', 'done', 'edges', 'shards'}
        and isinstance(value['key'], str)
        and state_files.has_fields_of({'done': value['done']}, _Done)
        and isinstance(value['edges'], list)
        and len(value['edges']) == block_writes.BUCKETS
        and all(type(n) is int and n >= 0 for n in value['edges'])
        and isinstance(value['shards'], list)
        and all(_is_shard(s) for s in value['shards'])
    )

  value = state_files.load_json(folder / _FILE, is_valid)
  if (
      value is None
      or value['key'] != expected_key
      or len(value['shards']) != len(shard_files)
  ):
    return None
  edges = [block_writes.edge_file(folder, k) for k in range(block_writes.BUCKETS)]
  if not all(f.exists() for f in shard_files) or not all(
      f.exists() and f.stat().length >= n for f, n in zip(edges, value['edges'])
  ):
    state_files.discard(folder / _FILE, 'a file it describes is gone or cut short')
    return None
  return Progress(
      done=value['done'],
      edges=value['edges'],
      shards=[tuple(s) for s in value['shards']],
  )


@dataclasses.dataclass
class _Done:
  done: dict[str, int]


def _is_shard(value: object) -> bool:
  return (
      isinstance(value, list)
      and len(value) == 3
      and type(value[0]) is int
      and value[0] >= 0
      and all(
          isinstance(d, dict)
          and all(isinstance(k, str) and isinstance(v, str) for k, v in d.items())
          for d in value[1:]
      )
  )


def save(folder: epath.Path, record_key: str, progress: Progress) -> None:
  """Records `progress`; call after the shards and edge files are on disk."""
  tmp = folder / f'{_FILE}.tmp'
  tmp.write_text(json.dumps({'key': record_key, **dataclasses.asdict(progress)}))
  tmp.replace(folder / _FILE)


def remove(folder: epath.Path) -> None:
  """Deletes the record: the shards it describes are finished."""
  (folder / _FILE).unlink(missing_ok=True)
