"""`imagenet2012-local build-classic`: the classic layout straight from the archives.

Writes the folder of `train-%05d-of-01024` and `validation-%05d-of-00128`
TFRecord files that the TPU, Intel, MLPerf and DALI ResNet pipelines read
(the layout: `classic_layout`) in one pass over the manual dir's archives, with
no TFDS dataset in between. Everything but the files' layout is the TFDS
build's own (`engine`): the archives found and checked (`split_sources`), the
checksum gate computed alongside, the labels cross-checked with the devkit,
images read by offset with many reads in flight and fixed by content, and the
same errors. The shards are written into a staging folder beside the output,
renamed to it only once every shard is written and every digest is right
(`publish`): a failed or killed build leaves nothing that looks complete.
Finished shards are kept in `<output_dir>.interrupted-build/` until the build
succeeds, so rerunning the same command resumes it (`resume`).

The splits are those whose archive is in the manual dir. Train is in the TFDS
build's seeded order; validation and test in file-name order across their
shards (`plan.plan_classic`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path

from imagenet2012_local import archive_index
from imagenet2012_local import build_lock
from imagenet2012_local import classic_layout
from imagenet2012_local import cli
from imagenet2012_local import engine
from imagenet2012_local import labels
from imagenet2012_local import plan
from imagenet2012_local import protected_paths
from imagenet2012_local import publish
from imagenet2012_local import resume as resume_lib
from imagenet2012_local import settings
from imagenet2012_local import split_sources


@dataclasses.dataclass(frozen=True)
class SplitWritten:
  """What the build wrote for one split."""

  split: str
  num_shards: int
  num_examples: int
  num_bytes: int
  archive_status: str  # The checksum gate's verdict on its archive.
  fixed_images: dict[str, str]  # file name -> why it was re-encoded
  skipped_images: dict[str, str]  # file name -> why no decoder reads it
  skipped_members: dict[str, str]  # archive member -> why it is no image


@dataclasses.dataclass(frozen=True)
class Built:
  """A finished build: where it is and what each split holds."""

  output_dir: Path
  splits: list[SplitWritten]
  dali_index: bool


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the `build-classic` flags to `parser`."""
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
      help='Folder to create with the TFRecord files; must not exist unless'
      ' --overwrite.',
  )
  cli.add_classic_layout_arguments(parser)
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


def run(args: argparse.Namespace) -> int:
  """Runs `build-classic` with parsed flags; returns the exit status."""
  built = build(
      manual_dir=Path(args.manual_dir),
      output_dir=Path(args.output_dir),
      num_shards=cli.classic_shard_counts(args),
      dali_index=args.dali_index,
      overwrite=args.overwrite,
      verify_checksums=args.verify_checksums,
      skip_bad_images=args.skip_bad_images,
      resume=args.resume,
  )
  print(summary(built))
  return 0


def build(
    manual_dir: Path,
    output_dir: Path,
    num_shards: Mapping[str, int] | None = None,
    dali_index: bool = False,
    overwrite: bool = False,
    verify_checksums: bool | None = None,
    skip_bad_images: bool | None = None,
    resume: bool | None = None,
) -> Built:
  """Writes `output_dir` in the classic layout from the archives in `manual_dir`.

  Args:
    manual_dir: The folder of the downloaded archives.
    output_dir: Folder to create.
    num_shards: Files per split; splits not given use
      `classic_layout.DEFAULT_SHARDS`.
    dali_index: Also write a DALI index per file.
    overwrite: Replace an existing `output_dir` once the build is done.
    verify_checksums: The checksum gate; None follows `settings`.
    skip_bad_images: Leave out undecodable images; None follows `settings`.
    resume: Reuse the shards an interrupted build of the same output kept
      (`resume`); False deletes them first. None follows `settings`.

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
  num_shards = {**classic_layout.DEFAULT_SHARDS, **(num_shards or {})}
  verify_checksums = settings.verify_checksums(verify_checksums)
  skip_bad_images = settings.skip_bad_images(skip_bad_images)
  output_dir = output_dir.absolute()
  inputs = [manual_dir]
  kept = resume_lib.KeptShards(
      f'{output_dir}{resume_lib.FOLDER_SUFFIX}', flush_in_batches=True
  )
  # Before any work: what this build may delete spares the archives.
  publish.check_free(output_dir, overwrite, inputs)
  for folder in [kept.folder, *_stale_staging_dirs(output_dir)]:
    protected_paths.refuse_to_delete(folder, inputs)
  # Before the archives are read, and held until the stale folders are gone.
  with build_lock.claimed(output_dir, output_dir, '--output_dir'):
    class_names = labels.class_names_file().read_text().split()
    sources = split_sources.find_sources(
        manual_dir,
        verify_checksums,
        _existing_ancestor(output_dir),
        class_names,
        kept_folder=kept.folder,
    ).by_split
    planner = functools.partial(_plan, num_shards=num_shards)
    if not settings.resume(resume):
      kept.remove(inputs)
    with (
        engine.local_map() as map_fn,
        publish.staged(output_dir, overwrite, inputs) as staging,
    ):
      layout = classic_layout.ClassicLayout(staging, class_names, dali_index)
      written = engine.write_all(
          sources, planner, layout, skip_bad_images, kept, map_fn
      )
    kept.remove(inputs)
    for stale in _stale_staging_dirs(output_dir):
      # Left by killed builds; one that cannot go (another user's) is harmless.
      with contextlib.suppress(OSError):
        protected_paths.delete(stale, inputs)
  return Built(
      output_dir=output_dir,
      splits=[
          _split_written(source, num_shards[split], written)
          for split, source in sources.items()
      ],
      dali_index=dali_index,
  )


def _split_written(
    source: split_sources.SplitSource, num_shards: int, written: engine.Written
) -> SplitWritten:
  """What `written` holds for `source`'s split."""
  results = written.of_split(source.split)
  fixed, skipped = written.fixed_and_skipped(source.split)
  return SplitWritten(
      split=source.split,
      num_shards=num_shards,
      num_examples=sum(r.num_examples for r in results),
      num_bytes=sum(r.num_bytes for r in results),
      archive_status=source.check.status,
      fixed_images=fixed,
      skipped_images=skipped,
      skipped_members=written.skipped_members[source.split],
  )


def summary(built: Built) -> str:
  """What `build` wrote where, in a few lines for the terminal."""
  lines = [f'Wrote {built.output_dir}:']
  for s in built.splits:
    first, last = (
        classic_layout.shard_name(s.split, k, s.num_shards)
        for k in (0, s.num_shards - 1)
    )
    lines.append(
        f'  {s.split}: {s.num_examples:,} images in {first} ... {last}'
        f' ({s.num_bytes:,} bytes); archive {s.archive_status}'
    )
    notes = [
        f'{what}: {len(names):,} (e.g. {", ".join(sorted(names)[:3])})'
        for what, names in (
            ('re-encoded to RGB JPEG', s.fixed_images),
            ('left out, no decoder reads them', s.skipped_images),
            ('archive members that are no images', s.skipped_members),
        )
        if names
    ]
    lines += [f'    {note}' for note in notes]
  if built.dali_index:
    lines.append(
        f'  DALI indexes: {built.output_dir / classic_layout.DALI_INDEX_DIR}/'
        '<file name>.idx'
    )
  lines.append(
      '  Labels (image/class/label): 1 to 1,000 over the sorted wnids, -1 in'
      ' test.'
  )
  return '\n'.join(lines)


def _plan(
    source: split_sources.SplitSource,
    index: archive_index.ArchiveIndex,
    num_shards: Mapping[str, int],
) -> list[plan.ShardTask]:
  """The engine's planner for this layout: fixed shard counts per split."""
  return plan.plan_classic(
      source.split, source.path, index, source.labels, num_shards[source.split]
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
