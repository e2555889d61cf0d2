"""The fast path's units of work, run as Apache Beam pipelines.

`BeamMap` has builtin `map`'s signature (a `shard_writer.MapFn`), so the
builder's sharded path runs unchanged on any Beam runner: indexing the inner
train tars is one pipeline and writing the shards another. Each worker reads
its images from the archive by offset and writes its shard itself, so only
shard assignments travel, never images, and the output is the same as the
local build's, byte for byte.

Items and results travel through files in a scratch directory, one per item,
and the pipeline's elements are only their indices, because:
- a `beam.Create` of the items themselves would embed them in the job graph,
  and the train split's shard assignments pickle to ~50 MB (numpy columns),
  beyond what runners accept (Dataflow refuses graphs over 10 MB);
- a Beam pipeline cannot hand a PCollection back to the program that launched
  it; its results must be written somewhere.
The files go through `epath`, so the scratch directory may be on gs:// like the
rest of the build, as long as every worker can reach it.
"""

from __future__ import annotations

import concurrent.futures
import os
import pickle
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from absl import logging
import apache_beam as beam
from etils import epath

_T = TypeVar('_T')
_R = TypeVar('_R')

# On cloud storage every small file is a round trip, so the launcher moves
# many at once; locally this costs nothing.
_IO_THREADS = 32


def _item_path(scratch_dir: epath.Path, index: int) -> epath.Path:
  return scratch_dir / f'item-{index}.pickle'


def _result_path(scratch_dir: epath.Path, index: int) -> epath.Path:
  return scratch_dir / f'result-{index}.pickle'


def _run_item(index: int, fn: Callable[[Any], Any], scratch_dir: str) -> None:
  """On a worker: runs `fn` on item `index` and saves the result beside it.

  A retried element rewrites the same result, so retries are harmless.
  """
  scratch = epath.Path(scratch_dir)
  item = pickle.loads(_item_path(scratch, index).read_bytes())
  _result_path(scratch, index).write_bytes(pickle.dumps(fn(item)))


class BeamMap:
  """`map` on Apache Beam: `BeamMap(runner, options, scratch_dir)(fn, items)`.

  Each call runs one pipeline over the items, waits for it, and returns the
  results in item order. `fn`, the items and the results must pickle; `fn` is
  shipped to the workers by Beam, so it must be importable there (install this
  package on them). One call at a time per scratch directory.
  """

  def __init__(
      self,
      runner: beam.runners.PipelineRunner | str | None,
      options: beam.options.pipeline_options.PipelineOptions | None,
      scratch_dir: epath.PathLike,
  ):
    """Sets where pipelines run and where their items and results go.

    Args:
      runner: as for `beam.Pipeline`; None takes the runner from `options`
        (default: the DirectRunner).
      options: as for `beam.Pipeline`.
      scratch_dir: a directory every worker can read and write, e.g. under the
        dataset's temporary data dir. It is created by each call and deleted
        before the call returns, whether or not the pipeline succeeded.
    """
    self._runner = runner
    self._options = options
    self._scratch_dir = epath.Path(scratch_dir)

  def __call__(self, fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """`fn` applied to each item on the Beam workers; results in item order."""
    items = list(items)
    if not items:
      return []
    scratch = self._scratch_dir
    scratch.mkdir(parents=True, exist_ok=True)
    try:
      with concurrent.futures.ThreadPoolExecutor(_IO_THREADS) as pool:
        list(
            pool.map(
                lambda i: _item_path(scratch, i).write_bytes(
                    pickle.dumps(items[i])
                ),
                range(len(items)),
            )
        )
        logging.info('Running %d items in one Beam pipeline.', len(items))
        with beam.Pipeline(runner=self._runner, options=self._options) as p:
          _ = (
              p
              # Reshuffling spreads the items over the workers; without it a
              # runner may fuse the whole pipeline into one worker.
              | 'Items' >> beam.Create(range(len(items)), reshuffle=True)
              | 'Run' >> beam.Map(_run_item, fn, os.fspath(scratch))
          )
        return list(
            pool.map(
                lambda i: pickle.loads(_result_path(scratch, i).read_bytes()),
                range(len(items)),
            )
        )
    finally:
      scratch.rmtree(missing_ok=True)
