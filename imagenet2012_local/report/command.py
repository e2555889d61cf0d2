"""`imagenet2012-local report`: its options, and the run that writes a report."""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Mapping
from pathlib import Path

import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import tqdm_utils

from imagenet2012_local.report import charts
from imagenet2012_local.report import layout
from imagenet2012_local.report import sheets
from imagenet2012_local.report.classes import ClassNames, ClassStats
from imagenet2012_local.report.records import read_records
from imagenet2012_local.report.scan import scan_split
from imagenet2012_local.report.summary import summarize

DATASET = 'imagenet2012_local'
_SPLIT_ORDER = ('train', 'validation', 'test')


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the `report` options to `parser`."""
  parser.add_argument(
      '--data_dir',
      default=None,
      help='TFDS data dir that holds imagenet2012_local/ (default: the TFDS'
      ' default).',
  )
  parser.add_argument(
      '--out', default='report', help='Folder to write the report into.'
  )
  parser.add_argument(
      '--samples',
      type=int,
      default=48,
      help='Images per split on the contact sheet.',
  )
  parser.add_argument(
      '--seed', type=int, default=0, help='Seed of the contact-sheet sample.'
  )
  parser.add_argument(
      '--short_fraction',
      type=float,
      default=0.5,
      help='A class is short when it has fewer examples than this fraction of'
      ' the median class.',
  )


def run(args: argparse.Namespace) -> int:
  """Writes the report of the dataset in `args.data_dir` into `args.out`.

  The files written are listed in `layout`.
  """
  builder = tfds.builder(DATASET, data_dir=args.data_dir)
  if not builder.is_prepared():
    print(
        f'No prepared {DATASET} {builder.version} in {builder.data_dir}.'
        ' Build it first (tfds build) or pass --data_dir.',
        file=sys.stderr,
    )
    return 1
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  metadata = builder.info.metadata
  class_names = ClassNames(
      builder.info.features['label'].names, metadata.get('class_words', {})
  )
  fixed = metadata.get('fixed_images', {})
  scans = []
  for split in _ordered_splits(builder.info.splits):
    records = tqdm_utils.tqdm(
        read_records(builder, split),
        desc=f'Reading {split}',
        total=builder.info.splits[split].num_examples,
        unit=' images',
    )
    scan = scan_split(
        records,
        split=split,
        num_classes=class_names.num_classes,
        fixed_names=fixed.get(split, {}).keys(),
        samples=args.samples,
        rng=random.Random(f'{args.seed}/{split}'),
    )
    scans.append(scan)
    sheets.draw_split_sheets(scan, fixed.get(split, {}), class_names, out)
  class_stats = [
      ClassStats.of(scan, args.short_fraction)
      for scan in scans
      if scan.labelled
  ]
  if class_stats:
    charts.draw_class_counts(class_stats, out / layout.CLASS_COUNTS_FILE)
  charts.draw_image_sizes(scans, out / layout.IMAGE_SIZES_FILE)
  summary = summarize(
      builder, scans, class_stats, class_names, args.short_fraction
  )
  (out / layout.SUMMARY_FILE).write_text(summary)
  print(
      f'Wrote {out}/; start with {layout.SUMMARY_FILE}.', file=sys.stderr
  )
  return 0


def _ordered_splits(splits: Mapping[str, object]) -> list[str]:
  """The known splits in their usual order, then any others by name."""
  known = [s for s in _SPLIT_ORDER if s in splits]
  return known + sorted(set(splits) - set(known))
