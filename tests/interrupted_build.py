"""Runs a build of the dummy archives that kills itself (SIGKILL) at a chosen
point, for the resume tests: `python -m tests.interrupted_build DATA_DIR POINT`.

POINT is one of `KILL_POINTS` or `KILL_POINTS_WHERE_WRITTEN`, or `none` for a build that runs to the end.
Every split is dealt into `SHARDS` shards (at most one per image), so a kill
can fall between shards of a split. $MANUAL_DIR overrides the archives'
folder (default: the bundled dummy data); further arguments are Beam
pipeline flags.
"""

from __future__ import annotations

import os
import signal
import sys

import tensorflow_datasets as tfds

import imagenet2012_local  # noqa: F401  (registers the builder)
from imagenet2012_local.engine import resume
from imagenet2012_local.sources import tar_reader
from imagenet2012_local import tfds_internals
from imagenet2012_local.gate import verification
from tests.helpers import DUMMY_DIR

SHARDS = 4


def _kill_on_call(owner, name: str, after: int = 0) -> None:
  """Kills this process at the `after`+1-th call of `owner.name`, before it runs."""
  original = getattr(owner, name)
  calls = []

  def dying(*args, **kwargs):
    calls.append(1)
    if len(calls) > after:
      os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)

  setattr(owner, name, dying)


# Each in the build's own process, so that they hold with worker processes
# ($IMAGENET2012_LOCAL_WORKERS) too.
KILL_POINTS = {
    # The second archive's member list (the first is train's).
    'indexing': lambda: _kill_on_call(tar_reader, 'index_tar', after=1),
    # As the sixth shard's result arrives, before it is recorded.
    'after-some-shards': lambda: _kill_on_call(resume.KeptShards, 'add_finished', after=5),
    'digest-wait': lambda: _kill_on_call(verification.BackgroundHasher, 'wait'),
    'publish': lambda: _kill_on_call(resume.KeptShards, 'publish', after=3),
}

# Where shards are written: only in a build in one process, or on Beam's
# in-memory runner.
KILL_POINTS_WHERE_WRITTEN = {
    'sixth-shard-finishing': lambda: _kill_on_call(resume.KeptShards, 'finish', after=5),
}


def main(data_dir: str, point: str, *beam_flags: str) -> None:
  # TFDS's own policy gives the dummy data one shard per split.
  tfds_internals.number_of_shards = lambda total_bytes, n: min(SHARDS, n)
  if point != 'none':
    {**KILL_POINTS, **KILL_POINTS_WHERE_WRITTEN}[point]()
  config = tfds.download.DownloadConfig(
      manual_dir=os.environ.get('MANUAL_DIR', DUMMY_DIR),
      beam_options=(
          tfds.core.lazy_imports.apache_beam.options.pipeline_options.PipelineOptions(
              flags=list(beam_flags)
          )
          if beam_flags
          else None
      ),
  )
  tfds.builder('imagenet2012_local', data_dir=data_dir).download_and_prepare(
      download_config=config
  )


if __name__ == '__main__':
  main(*sys.argv[1:])
