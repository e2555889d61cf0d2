"""The Markdown summary: counts, classes, fixes, archives, sizes, pictures."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from imagenet2012_local.paths import BUILD_STATS_FILE
from imagenet2012_local.report import layout
from imagenet2012_local.report.classes import ClassNames, ClassStats
from imagenet2012_local.report.scan import SplitScan, as_numpy

OFFICIAL_COUNTS = {'train': 1_281_167, 'validation': 50_000, 'test': 100_000}
_LISTED_CLASSES = 20  # Missing/short classes named in the summary, per split.


def summarize(
    builder: tfds.core.DatasetBuilder,
    scans: Sequence[SplitScan],
    class_stats: Sequence[ClassStats],
    class_names: ClassNames,
    short_fraction: float,
) -> str:
  """The Markdown summary of the report."""
  metadata = builder.info.metadata
  fixed = metadata.get('fixed_images', {})
  skipped = metadata.get('skipped_images', {})
  lines = [
      f'# {builder.name} {builder.version}: report',
      '',
      f'- Dataset: `{builder.data_dir}` ({builder.info.file_format.value}).',
      f'- {_build_time(epath.Path(builder.data_dir))}',
      '- Class names: '
      + (
          "the devkit's words."
          if class_names.words
          else 'wnids (the build had no devkit, so no words).'
      ),
      '',
      '## Examples per split',
      '',
      '| split | examples | official | difference | fixed | skipped |',
      '|---|---:|---:|---:|---:|---:|',
  ]
  for scan in scans:
    official = OFFICIAL_COUNTS.get(scan.split)
    lines.append(
        f'| {scan.split} | {scan.num_examples:,} | '
        + (
            f'{official:,} | {scan.num_examples - official:+,}'
            if official
            else '- | -'
        )
        + f' | {len(fixed.get(scan.split, {})):,}'
        f' | {len(skipped.get(scan.split, {})):,} |'
    )
  lines += ['', '## Classes', '']
  lines += _class_lines(class_stats, class_names, short_fraction)
  lines += ['', '## Fixed and skipped images', '']
  lines += _file_table(
      'Re-encoded to RGB JPEG by the build', fixed, scans, class_names
  )
  lines += _file_table('Skipped by the build', skipped, scans, class_names)
  no_header = [(s.split, name) for s in scans for name in s.no_header]
  if no_header:
    lines.append(
        f'{len(no_header):,} stored images have no readable JPEG header'
        ' (not in the size histograms), e.g. '
        + ', '.join(f'{split}/{name}' for split, name in no_header[:5])
        + '.'
    )
  lines += ['', '## Archives', '']
  lines += _archive_lines(metadata.get('archives', {}))
  lines += ['', '## Image sizes', '']
  lines += _size_table(scans)
  lines += ['', '## Pictures', '']
  lines += _picture_lines(scans, class_stats)
  lines += ['', '## Sampled images', '']
  lines += _sample_lines(scans, class_names)
  return '\n'.join(lines)


def _class_lines(
    class_stats: Sequence[ClassStats],
    class_names: ClassNames,
    short_fraction: float,
) -> list[str]:
  """Per labelled split: the median class, and the missing and short ones."""
  if not class_stats:
    return ['No labelled split.']
  lines = []
  for s in class_stats:
    lines.append(
        f'- {s.split}: median {s.median:,.4g} examples per class,'
        f' {len(s.missing):,} missing,'
        f' {len(s.short):,} short (fewer than {short_fraction:.0%} of the'
        ' median).'
    )
    for kind, labels in (('missing', s.missing), ('short', s.short)):
      if not len(labels):
        continue
      named = [
          class_names.full(label)
          + (f': {s.counts[label]:,}' if kind == 'short' else '')
          for label in labels[:_LISTED_CLASSES]
      ]
      if len(labels) > _LISTED_CLASSES:
        named.append(f'… and {len(labels) - _LISTED_CLASSES:,} more')
      lines.append(f'  - {kind}: ' + '; '.join(named) + '.')
  return lines


def _file_table(
    title: str,
    files: Mapping[str, Mapping[str, str]],
    scans: Sequence[SplitScan],
    class_names: ClassNames,
) -> list[str]:
  """A table of {split: {file_name: reason}}, with the class of files seen."""
  if not any(files.values()):
    return [f'{title}: none.', '']
  labels = {
      (s.split, ex.file_name): ex.label for s in scans for ex in s.fixed
  }
  lines = [
      f'{title}:',
      '',
      '| split | file | class | reason |',
      '|---|---|---|---|',
  ]
  for split, reasons in files.items():
    for name, reason in reasons.items():
      label = labels.get((split, name))
      # A skipped file is not in the records, so its class is unknown here.
      class_name = '-' if label is None else class_names.full(label)
      lines.append(f'| {split} | {name} | {class_name} | {reason} |')
  return lines + ['']


def _archive_lines(archives: Mapping[str, Mapping[str, object]]) -> list[str]:
  if not archives:
    return ['The metadata records no archives.']
  verified = sum(1 for a in archives.values() if a.get('md5'))
  lines = [
      f'{verified} of {len(archives)} archives verified against known digests'
      ' (the checksum tables of the build; the MD5 of the known copy is'
      ' shown).',
      '',
      '| archive | split | size | MD5 | status |',
      '|---|---|---:|---|---|',
  ]
  for name, a in archives.items():
    md5 = f'`{a["md5"]}`' if a.get('md5') else 'not verified'
    lines.append(
        f'| {name} | {a.get("split", "-")} | {a.get("bytes", 0):,} B'
        f' | {md5} | {a.get("status", "-")} |'
    )
  return lines


def _size_table(scans: Sequence[SplitScan]) -> list[str]:
  """Median and extreme image sides and stored sizes, per split with headers."""
  lines = [
      '| split | median width × height | smallest side | largest side |'
      ' median JPEG | total |',
      '|---|---|---:|---:|---:|---:|',
  ]
  for scan in scans:
    if scan.widths:
      widths, heights = as_numpy(scan.widths), as_numpy(scan.heights)
      sizes = as_numpy(scan.sizes)
      lines.append(
          f'| {scan.split}'
          f' | {np.median(widths):,.0f} × {np.median(heights):,.0f}'
          f' | {np.minimum(widths, heights).min():,} px'
          f' | {np.maximum(widths, heights).max():,} px'
          f' | {np.median(sizes) / 1e3:,.0f} KB'
          f' | {sizes.sum() / 1e9:,.2f} GB |'
      )
  return lines


def _picture_lines(
    scans: Sequence[SplitScan], class_stats: Sequence[ClassStats]
) -> list[str]:
  """Links to the PNGs of the report folder that were written."""
  lines = []
  for scan in scans:
    lines.append(
        f'![{scan.split}: random sample]({layout.sample_file(scan.split)})'
    )
    if scan.fixed:
      lines.append(
          f'![{scan.split}: fixed images]({layout.fixed_file(scan.split)})'
      )
  if class_stats:
    lines.append(f'![Examples per class]({layout.CLASS_COUNTS_FILE})')
  lines.append(f'![Image sizes]({layout.IMAGE_SIZES_FILE})')
  return lines


def _sample_lines(
    scans: Sequence[SplitScan], class_names: ClassNames
) -> list[str]:
  """The contact sheets in words, so they can be searched and read aloud."""
  lines = []
  for scan in scans:
    lines += [
        '<details>',
        f'<summary>{scan.split}: the {len(scan.sample):,} images on'
        f' {layout.sample_file(scan.split)}</summary>',
        '',
    ]
    lines += [
        f'- {ex.file_name}: {class_names.full(ex.label)}' for ex in scan.sample
    ]
    lines += ['', '</details>', '']
  return lines


def _build_time(version_dir: epath.Path) -> str:
  stats_file = version_dir / BUILD_STATS_FILE
  if not stats_file.exists():
    return 'Build time: not recorded.'
  seconds = json.loads(stats_file.read_text())['seconds']
  hours, rest = divmod(round(seconds), 3600)
  minutes, whole_seconds = divmod(rest, 60)
  if hours:
    text = f'{hours} h {minutes:02d} min'
  elif minutes:
    text = f'{minutes} min {whole_seconds:02d} s'
  else:
    text = f'{seconds:.3g} s'
  # build_stats.json times the generation (indexing, writing, checksums), not the
  # start-up of the command that ran it.
  return f'Build time: {text} (generation, without start-up).'
