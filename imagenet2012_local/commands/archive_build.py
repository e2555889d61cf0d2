"""A folder of shards written straight from the archives, in any layout: what
`build-classic` and `build-wds` share.

Everything but the files' layout is the TFDS build's own (`engine`): the
archives found and checked (`split_sources`), the checksum gate computed
alongside, the labels cross-checked with the devkit, images read by offset
with many reads in flight and fixed by content, and the same errors. The
shards are written into a staging folder beside the output, renamed to it
only once every shard is written and every digest is right (`publish`): a
failed or killed build leaves nothing that looks complete. Finished shards
are kept in `<output_dir>.interrupted-build/` until the build succeeds, so
rerunning the same command resumes it (`resume`).

The splits are those whose archive is in the manual dir, each dealt into a
fixed number of shards: train in the TFDS build's seeded order, validation
and test in file-name order (`classic_layout.plan_split`).
"""

from __future__ import annotations

import os
import argparse
import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from imagenet2012_local.gate import build_lock
from imagenet2012_local.engine import orchestration
from imagenet2012_local.layouts import classic_layout
from imagenet2012_local.engine import run
from imagenet2012_local.sources import labels
from imagenet2012_local.engine import publish
from imagenet2012_local.engine import resume as resume_lib
from imagenet2012_local import settings
from imagenet2012_local.engine import shard_writer
from imagenet2012_local.sources import source as source_lib

# Makes the layout that writes into the staging folder, from the sorted wnids.
LayoutFactory = Callable[[Path, Sequence[str]], shard_writer.Layout]


@dataclasses.dataclass(frozen=True)
class SplitWritten:
  """What the build wrote for one split."""

  split: str
  num_shards: int
  shard_lengths: list[int]  # Images in each shard, in shard order.
  num_bytes: int
  archive_status: str  # The checksum gate's verdict on its archive.
  fixed_images: dict[str, str]  # file name -> why it was re-encoded
  skipped_images: dict[str, str]  # file name -> why no decoder reads it
  skipped_members: dict[str, str]  # archive member -> why it is no image

  @property
  def num_examples(self) -> int:
    return sum(self.shard_lengths)


def add_arguments(
    parser: argparse.ArgumentParser,
    layout_flags: Callable[[argparse.ArgumentParser], None],
) -> None:
  """Adds the flags every build from the archives takes to `parser`, with
  the layout's own (`layout_flags`) after the folders."""
  parser.add_argument(
      '--manual_dir',
      required=True,
      help='Folder holding the ImageNet 2012 archives as downloaded (any of'
      ' ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar,'
      ' ILSVRC2012_img_test.tar; ILSVRC2012_devkit_t12.tar.gz to cross-check'
      ' the validation labels). Each split found is written.',
  )
  parser.add_argument(
      '--output_dir',
      required=True,
      help='Folder to create with the shard files; must not exist unless'
      ' --overwrite.',
  )
  layout_flags(parser)
  parser.add_argument(
      '--overwrite',
      action='store_true',
      help='Replace --output_dir if it exists (only once the build is done;'
      ' never one that is, holds or is inside the manual dir).',
  )
  parser.add_argument(
      '--no_verify',
      dest='verify_checksums',
      action='store_const',
      const=False,
      help='Do not check the archives against the known sizes and digests'
      f' (default: check, unless {settings.VERIFY_ENV_VAR}=0).',
  )
  parser.add_argument(
      '--skip_bad_images',
      action='store_const',
      const=True,
      help='Leave out images no decoder reads, instead of failing (default:'
      f' fail, unless {settings.SKIP_BAD_IMAGES_ENV_VAR}=1).',
  )
  parser.add_argument(
      '--fresh',
      dest='resume',
      action='store_const',
      const=False,
      help='Delete the shards an interrupted build kept in'
      f' <output_dir>{resume_lib.FOLDER_SUFFIX}/ and start afresh (default: reuse'
      f' them, unless {settings.RESUME_ENV_VAR}=0).',
  )


def flags_of(args: argparse.Namespace) -> dict[str, object]:
  """The `build` arguments of the flags `add_arguments` added, parsed."""
  return {
      'manual_dir': args.manual_dir,
      'output_dir': Path(args.output_dir),
      'overwrite': args.overwrite,
      'verify_checksums': args.verify_checksums,
      'skip_bad_images': args.skip_bad_images,
      'resume': args.resume,
  }


def build(
    manual_dir: str | os.PathLike[str],
    output_dir: Path,
    num_shards: Mapping[str, int],
    make_layout: LayoutFactory,
    overwrite: bool = False,
    verify_checksums: bool | None = None,
    skip_bad_images: bool | None = None,
    resume: bool | None = None,
    finish: Callable[[Path, list[SplitWritten]], None] = lambda *_: None,
) -> list[SplitWritten]:
  """Writes `output_dir` in a layout from the inputs in `manual_dir`.

  Args:
    manual_dir: The folder (or URL) of the archives or an extracted copy.
    output_dir: Folder to create.
    num_shards: Files per split, for every split an archive may give.
    make_layout: The layout, given the staging folder and the sorted wnids.
    overwrite: Replace an existing `output_dir` once the build is done.
    verify_checksums: The checksum gate; None follows `settings`.
    skip_bad_images: Leave out undecodable images; None follows `settings`.
    resume: Reuse the shards an interrupted build of the same output kept
      (`resume`); False deletes them first. None follows `settings`.
    finish: Writes what goes beside the shards (e.g. an index of them) into
      the staging folder, from what each split holds, before it is published.

  Returns:
    What each split holds, in the manual dir's split order.

  Raises:
    protected_paths.InputFolderError: `output_dir`, or a folder beside it
      that the build deletes, is, holds or is inside `manual_dir` (or holds
      an archive); checked before any work.
    publish.OutputExistsError: `output_dir` exists without `overwrite`.
    build_lock.OutputNotWritableError, build_lock.BuildInProgressError:
      `output_dir` cannot be written, or another build is writing it.
    errors.Imagenet2012LocalError: what the TFDS build raises for the same
      archives (missing, damaged, wrong digest, bad labels, full disk...).
  """
  output_dir = Path(output_dir).absolute()
  build = orchestration.Orchestration(
      manual_dir,
      settings.read(verify_checksums, skip_bad_images, resume),
      resume_lib.KeptShards(
          f'{output_dir}{resume_lib.FOLDER_SUFFIX}', flush_in_batches=True
      ),
      lambda: _stale_staging_dirs(output_dir),
  )
  # Before any work: what this build may delete spares the inputs.
  publish.check_free(output_dir, overwrite, build.inputs)
  build.refuse_to_delete_inputs()
  # Before the inputs are read, and held until the stale folders are gone.
  with build_lock.claimed(output_dir, output_dir, '--output_dir'):
    sources = build.find_sources(_existing_ancestor(output_dir))
    planner = functools.partial(classic_layout.plan_split, num_shards=num_shards)
    with (
        orchestration.local_map(build.settings) as map_fn,
        publish.staged(output_dir, overwrite, build.inputs) as staging,
    ):
      written = build.write(
          sources.by_split, planner, make_layout(staging, labels.class_names()), map_fn
      )
      splits = [_split_written(source, written) for source in sources.by_split.values()]
      finish(staging, splits)
    build.clean_up()
  return splits


def summary_lines(split: SplitWritten, first: str, last: str) -> list[str]:
  """What a build wrote for `split`, whose files run from `first` to `last`:
  a line for the terminal, and one for each kind of image it changed."""
  notes = [
      f'{what}: {len(names):,} (e.g. {", ".join(sorted(names)[:3])})'
      for what, names in (
          ('re-encoded to RGB JPEG', split.fixed_images),
          ('left out, no decoder reads them', split.skipped_images),
          ('archive members that are no images', split.skipped_members),
      )
      if names
  ]
  return [
      f'  {split.split}: {split.num_examples:,} images in {first} ... {last}'
      f' ({split.num_bytes:,} bytes); archive {split.archive_status}',
      *(f'    {note}' for note in notes),
  ]


def _split_written(
    source: source_lib.Source, written: run.Written
) -> SplitWritten:
  """What `written` holds for `source`'s split."""
  results = written.of_split(source.split)
  fixed, skipped = written.fixed_and_skipped(source.split)
  return SplitWritten(
      split=source.split,
      num_shards=len(results),
      shard_lengths=[r.num_examples for r in results],
      num_bytes=sum(r.num_bytes for r in results),
      archive_status=source.check.status,
      fixed_images=fixed,
      skipped_images=skipped,
      skipped_members=written.skipped_members[source.split],
  )


def _stale_staging_dirs(output_dir: Path) -> list[Path]:
  """The staging folders killed builds of `output_dir` left (`publish`).

  Only real folders: `publish` never makes a symlink, and one of that name
  points at something that is not ours to delete.
  """
  return [
      path
      for path in output_dir.parent.glob(f'{output_dir.name}.incomplete-*')
      if path.is_dir() and not path.is_symlink()
  ]


def _existing_ancestor(path: Path) -> Path:
  """`path` or its nearest existing parent: where free space can be asked."""
  while not path.exists() and path != path.parent:
    path = path.parent
  return path
