"""What every front door does around `run.write_all`, in one place.

The TFDS builder and the commands (`build-classic`, `build-wds`) differ only
in where the shards go and who publishes them (TFDS renames its
`incomplete.*` folder; a command renames its staging folder, `publish`).
The rest is this module's, in this order:

1. settings, read once (`settings.read`);
2. before any work, the folders the build may delete (kept shards, the
   staging folders killed builds left) checked against the inputs
   (`protected_paths`);
3. the sources found and checked (`split_sources`);
4. the kept shards of an interrupted build reused, or deleted (`--fresh`);
5. every split indexed, planned and written (`run.write_all`);
6. once published, the kept shards and stale staging folders deleted.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping

from etils import epath

from imagenet2012_local import settings as settings_lib
from imagenet2012_local.engine import resume
from imagenet2012_local.engine import run
from imagenet2012_local.engine import shard_writer
from imagenet2012_local.engine import worker_pool
from imagenet2012_local.gate import protected_paths
from imagenet2012_local.sources import labels
from imagenet2012_local.sources import source
from imagenet2012_local.sources import split_sources

# The folders killed builds of this output left: TFDS's `incomplete.*`, or a
# command's `<output>.incomplete-*`.
StaleFolders = Callable[[], Iterable[epath.PathLike]]


class Orchestration:
  """One build from `manual_dir`, through a kept-shards folder."""

  def __init__(
      self,
      manual_dir: str | os.PathLike[str],
      build_settings: settings_lib.BuildSettings,
      kept: resume.KeptShards,
      stale_folders: StaleFolders,
  ):
    self.manual_dir = manual_dir
    self.settings = build_settings
    self.kept = kept
    self._stale_folders = stale_folders
    # What this build reads, and so may never delete.
    self.inputs = [manual_dir]

  def refuse_to_delete_inputs(self) -> None:
    """Raises, before any work, if a folder the build deletes is, holds or
    is inside the manual dir (`protected_paths`)."""
    for folder in [self.kept.folder, *self._stale_folders()]:
      protected_paths.refuse_to_delete(folder, self.inputs)

  def find_sources(self, output_root: epath.PathLike) -> split_sources.Sources:
    """The inputs, checked before any image is read (`split_sources`); free
    space is asked of `output_root`."""
    return split_sources.find_sources(
        self.manual_dir,
        self.settings.verify_checksums,
        output_root,
        labels.class_names(),
        kept_folder=self.kept.folder,
        reads_in_flight=self.settings.reads_in_flight,
        read_order=self.settings.read_order,
    )

  def write(
      self,
      sources: Mapping[str, source.Source],
      planner: run.Planner,
      layout: shard_writer.Layout,
      map_fn: shard_writer.MapFn,
  ) -> run.Written:
    """Every split written in `layout` through the kept shards (those of an
    interrupted build reused unless the settings say afresh)."""
    if not self.settings.resume:
      self.kept.remove(self.inputs)
    return run.write_all(
        sources, planner, layout, self.settings.skip_bad_images,
        self.kept, map_fn,
    )

  def clean_up(self) -> None:
    """After publishing: the kept shards and the stale staging folders go;
    one that cannot (another user's) is harmless and stays."""
    self.kept.remove(self.inputs)
    for stale in self._stale_folders():
      with contextlib.suppress(OSError):
        protected_paths.delete(stale, self.inputs)


@contextlib.contextmanager
def local_map(build_settings: settings_lib.BuildSettings) -> Iterator[shard_writer.MapFn]:
  """What runs a build's units of work without Beam: the settings' worker
  processes (`worker_pool`), or builtin `map` for one. Says first which
  settings were lowered to their bounds."""
  for line in settings_lib.lowered():
    print(line, file=sys.stderr)
  if build_settings.workers == 1:
    yield map
    return
  with worker_pool.WorkerPool(build_settings.workers) as pool:
    yield pool
