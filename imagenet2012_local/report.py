"""`imagenet2012-local report`: contact sheets, charts and a summary of a build.

Reads a prepared dataset in one streaming pass per split, without decoding
images: sizes come from the JPEG headers, the contact-sheet sample is a
reservoir sample, and memory stays constant apart from the per-class counters
and one width/height/bytes entry per image (12 bytes each, 16 MB for full
ImageNet). Only the sampled and the fixed images are decoded, for drawing.
"""

from __future__ import annotations

import argparse
import array
import dataclasses
import io
import json
import random
import sys
import textwrap
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path

from etils import epath
# Figures made without pyplot render PNGs with Agg and never open a display.
from matplotlib import ticker
from matplotlib.figure import Figure
import numpy as np
import PIL.Image
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import tqdm_utils

from imagenet2012_local import image_fixes
from imagenet2012_local.imagenet2012_local_dataset_builder import (
    BUILD_STATS_FILE,
)

DATASET = 'imagenet2012_local'
OFFICIAL_COUNTS = {'train': 1_281_167, 'validation': 50_000, 'test': 100_000}
SUMMARY_FILE = 'summary.md'
_SPLIT_ORDER = ('train', 'validation', 'test')
_NO_LABEL = 'no label'
_COLUMNS = 8
_MIN_COLUMNS = 4
_TILE_PX = 160
_CAPTION_CHARS = 30  # Wider captions run into the next tile.
_DPI = 100
_LISTED_CLASSES = 20  # Missing/short classes named in the summary, per split.
_ARRAY_RECORD_BATCH = 1024


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
  """Writes the report of the dataset in `args.data_dir` into `args.out`."""
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
        _records(builder, split),
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
    _draw_sheets(scan, fixed.get(split, {}), class_names, out)
  class_stats = [
      ClassStats.of(scan, args.short_fraction)
      for scan in scans
      if scan.labelled
  ]
  if class_stats:
    draw_class_counts(class_stats, out / 'class_counts.png')
  draw_image_sizes(scans, out / 'image_sizes.png')
  summary = summarize(
      builder, scans, class_stats, class_names, args.short_fraction
  )
  (out / SUMMARY_FILE).write_text(summary)
  print(f'Wrote {out}/; start with {SUMMARY_FILE}.', file=sys.stderr)
  return 0


@dataclasses.dataclass(frozen=True)
class Example:
  """One stored record, the image left encoded."""

  file_name: str
  label: int  # -1 for the unlabelled test split.
  data: bytes


@dataclasses.dataclass(frozen=True)
class ClassNames:
  """Wnids by label, and the devkit's words for them when the build had it."""

  wnids: Sequence[str]
  words: Mapping[str, str]

  @property
  def num_classes(self) -> int:
    return len(self.wnids)

  def full(self, label: int) -> str:
    """'n01440764 (tench, Tinca tinca)', or the wnid alone without words."""
    if label < 0:
      return _NO_LABEL
    wnid = self.wnids[label]
    return f'{wnid} ({self.words[wnid]})' if wnid in self.words else wnid

  def short(self, label: int) -> str:
    """The first of the class's words ('tench'), else its wnid; for captions."""
    if label < 0:
      return _NO_LABEL
    wnid = self.wnids[label]
    return self.words[wnid].split(',')[0] if wnid in self.words else wnid


class Reservoir:
  """A uniform random sample of at most `size` items of a stream.

  Algorithm R: the n-th item replaces a random kept one with probability
  size/n, so every item ends up kept with the same probability.
  """

  def __init__(self, size: int, rng: random.Random):
    self.size = size
    self.items: list[Example] = []
    self._seen = 0
    self._rng = rng

  def add(self, item: Example) -> None:
    """Offers the next item of the stream."""
    self._seen += 1
    if len(self.items) < self.size:
      self.items.append(item)
      return
    slot = self._rng.randrange(self._seen)
    if slot < self.size:
      self.items[slot] = item


def _column(typecode: str) -> dataclasses.Field:
  """A dataclass field holding an empty array.array of `typecode`."""
  return dataclasses.field(default_factory=partial(array.array, typecode))


@dataclasses.dataclass
class SplitScan:
  """What one pass over a split found."""

  split: str
  class_counts: list[int]
  # Compact columns, an entry per image: stored bytes always, sides (16-bit
  # in JPEG) when the header could be read.
  sizes: array.array = _column('Q')
  widths: array.array = _column('H')
  heights: array.array = _column('H')
  num_examples: int = 0
  labelled: bool = False
  no_header: list[str] = dataclasses.field(default_factory=list)
  sample: list[Example] = dataclasses.field(default_factory=list)
  fixed: list[Example] = dataclasses.field(default_factory=list)


def scan_split(
    records: Iterable[Example],
    *,
    split: str,
    num_classes: int,
    fixed_names: Collection[str],
    samples: int,
    rng: random.Random,
) -> SplitScan:
  """Counts, sizes, a reservoir sample and the fixed images of one split."""
  scan = SplitScan(split=split, class_counts=[0] * num_classes)
  fixed_names = set(fixed_names)
  reservoir = Reservoir(samples, rng)
  for example in records:
    scan.num_examples += 1
    if example.label >= 0:
      scan.class_counts[example.label] += 1
      scan.labelled = True
    scan.sizes.append(len(example.data))
    header = image_fixes.read_jpeg_header(example.data)
    if header is None:  # Not expected after the build's fixes; reported.
      scan.no_header.append(example.file_name)
    else:
      scan.widths.append(header.width)
      scan.heights.append(header.height)
    reservoir.add(example)
    if example.file_name in fixed_names:
      scan.fixed.append(example)
  # Grouped by class, so neighbours on the sheet can be compared.
  scan.sample = sorted(reservoir.items, key=lambda e: (e.label, e.file_name))
  scan.fixed.sort(key=lambda e: e.file_name)
  return scan


@dataclasses.dataclass(frozen=True)
class ClassStats:
  """Examples per class of a labelled split, and the classes that stand out."""

  split: str
  counts: np.ndarray
  median: float
  threshold: float  # Classes with fewer examples (but not none) are short.
  missing: np.ndarray  # Labels with no example.
  short: np.ndarray

  @classmethod
  def of(cls, scan: SplitScan, short_fraction: float) -> ClassStats:
    counts = np.asarray(scan.class_counts)
    median = float(np.median(counts))
    threshold = short_fraction * median
    return cls(
        split=scan.split,
        counts=counts,
        median=median,
        threshold=threshold,
        missing=np.flatnonzero(counts == 0),
        short=np.flatnonzero((counts > 0) & (counts < threshold)),
    )


def draw_contact_sheet(
    title: str, tiles: Sequence[tuple[bytes, str]], path: Path
) -> None:
  """Writes a grid of thumbnails of the JPEG `tiles`, each with its caption."""
  # At least a few columns, so that the title of a short sheet still fits.
  columns = min(_COLUMNS, max(len(tiles), _MIN_COLUMNS))
  rows = max(-(-len(tiles) // columns), 1)
  tile_in = _TILE_PX / _DPI
  fig = Figure(
      figsize=(columns * tile_in, rows * tile_in * 1.35 + 0.4),
      dpi=_DPI,
      layout='constrained',
  )
  axes = fig.subplots(rows, columns, squeeze=False)
  for ax in axes.flat:
    ax.axis('off')
  for ax, (data, caption) in zip(axes.flat, tiles):
    ax.imshow(_thumbnail(data))
    ax.set_title(caption, fontsize=6.5, linespacing=1.1)
  if not tiles:
    axes[0, 0].text(0.5, 0.5, 'no images', ha='center', va='center')
  fig.suptitle(title, fontsize=10)
  fig.savefig(path)


def draw_class_counts(stats: Sequence[ClassStats], path: Path) -> None:
  """Writes a bar chart of examples per class index, one panel per split."""
  fig = Figure(figsize=(12, 3.2 * len(stats)), dpi=_DPI, layout='constrained')
  axes = fig.subplots(len(stats), 1, squeeze=False)
  for ax, s in zip(axes[:, 0], stats):
    top = max(int(s.counts.max()), 1) * 1.25  # Headroom for the legend.
    # A bar is a pixel wide: flagged classes also get a wider full-height band
    # behind the bars, seen above them (and for a missing class, everywhere
    # its neighbours are missing too).
    for labels, color, kind in (
        (s.missing, 'tab:red', 'missing'),
        (s.short, 'tab:orange', f'short (< {s.threshold:,.4g})'),
    ):
      ax.vlines(
          labels, 0, top, colors=color, linewidth=4, alpha=0.3, zorder=1,
          label=f'{kind}: {len(labels):,}',
      )
    colors = np.full(len(s.counts), 'tab:blue', dtype=object)
    colors[s.short] = 'tab:orange'
    ax.bar(  # The edge keeps a lone bar visible among missing classes.
        np.arange(len(s.counts)), s.counts, width=1.0, linewidth=0.6,
        color=colors, edgecolor=colors, zorder=2,
    )
    ax.axhline(
        s.median, color='black', linestyle='--', linewidth=0.8,
        label=f'median: {s.median:,.4g}',
    )
    ax.set_xlim(-0.5, len(s.counts) - 0.5)
    ax.set_ylim(0, top)
    ax.set_title(
        f'{s.split}: examples per class ({int(s.counts.sum()):,} in all)'
    )
    ax.set_xlabel('class index (label)')
    ax.set_ylabel('examples')
    ax.legend(loc='upper right', fontsize=8, ncols=3)
  fig.savefig(path)


def draw_image_sizes(scans: Sequence[SplitScan], path: Path) -> None:
  """Writes histograms of image width, height and stored size, per split."""
  panels = (
      ('width (px)', lambda s: _numpy(s.widths)),
      ('height (px)', lambda s: _numpy(s.heights)),
      ('stored JPEG (KB)', lambda s: _numpy(s.sizes) / 1e3),
  )
  fig = Figure(figsize=(13, 3.6), dpi=_DPI, layout='constrained')
  axes = fig.subplots(1, len(panels))
  for ax, (label, values_of) in zip(axes, panels):
    values = {s.split: values_of(s) for s in scans if s.num_examples}
    everything = np.concatenate(list(values.values()) or [np.zeros(1)])
    bins = np.linspace(everything.min(), everything.max() + 1, 60)
    for split, split_values in values.items():
      ax.hist(
          split_values, bins=bins, histtype='step', linewidth=1.2,
          label=f'{split} ({len(split_values):,})',
      )
    ax.set_yscale('log')  # Rare very small or very large images stay visible.
    # Plain numbers, not 3×10⁰; minor ticks get labels on short ranges only.
    ax.yaxis.set_major_formatter(ticker.LogFormatter())
    ax.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False))
    ax.set_xlabel(label)
    ax.set_ylabel('images')
    ax.legend(fontsize=8)
  fig.suptitle('Image sizes (from the JPEG headers)', fontsize=11)
  fig.savefig(path)


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
  if not class_stats:
    lines.append('No labelled split.')
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
  lines += [
      '| split | median width × height | smallest side | largest side |'
      ' median JPEG | total |',
      '|---|---|---:|---:|---:|---:|',
  ]
  for scan in scans:
    if scan.widths:
      widths, heights = _numpy(scan.widths), _numpy(scan.heights)
      sizes = _numpy(scan.sizes)
      lines.append(
          f'| {scan.split}'
          f' | {np.median(widths):,.0f} × {np.median(heights):,.0f}'
          f' | {np.minimum(widths, heights).min():,} px'
          f' | {np.maximum(widths, heights).max():,} px'
          f' | {np.median(sizes) / 1e3:,.0f} KB'
          f' | {sizes.sum() / 1e9:,.2f} GB |'
      )
  lines += ['', '## Pictures', '']
  for scan in scans:
    lines.append(f'![{scan.split}: random sample]({scan.split}_sample.png)')
    if scan.fixed:
      lines.append(f'![{scan.split}: fixed images]({scan.split}_fixed.png)')
  if class_stats:
    lines.append('![Examples per class](class_counts.png)')
  lines.append('![Image sizes](image_sizes.png)')
  lines += ['', '## Sampled images', '']
  # The contact sheets in words, so they can be searched and read aloud.
  for scan in scans:
    lines += [
        '<details>',
        f'<summary>{scan.split}: the {len(scan.sample):,} images on'
        f' {scan.split}_sample.png</summary>',
        '',
    ]
    lines += [
        f'- {ex.file_name}: {class_names.full(ex.label)}' for ex in scan.sample
    ]
    lines += ['', '</details>', '']
  return '\n'.join(lines)


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


def _ordered_splits(splits: Mapping[str, object]) -> list[str]:
  known = [s for s in _SPLIT_ORDER if s in splits]
  return known + sorted(set(splits) - set(known))


def _records(
    builder: tfds.core.DatasetBuilder, split: str
) -> Iterator[Example]:
  """The split's records in stored order, images not decoded."""
  skip = {'image': tfds.decode.SkipDecoding()}
  if builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
    # TFDS cannot open ArrayRecord with tf.data; read it in index batches.
    source = builder.as_data_source(split=split, decoders=skip)
    for start in range(0, len(source), _ARRAY_RECORD_BATCH):
      stop = min(start + _ARRAY_RECORD_BATCH, len(source))
      yield from map(_example, source.__getitems__(range(start, stop)))
  else:
    dataset = builder.as_dataset(
        split=split, decoders=skip, shuffle_files=False
    )
    yield from map(_example, tfds.as_numpy(dataset))


def _example(record: Mapping[str, object]) -> Example:
  file_name = record['file_name']  # bytes from both readers; str is accepted.
  return Example(
      file_name=(
          file_name.decode() if isinstance(file_name, bytes) else file_name
      ),
      label=int(record['label']),
      data=bytes(record['image']),
  )


def _draw_sheets(
    scan: SplitScan,
    fixed_reasons: Mapping[str, str],
    class_names: ClassNames,
    out: Path,
) -> None:
  """The split's sample sheet and, if the build fixed any, its fixed sheet."""
  draw_contact_sheet(
      f'{scan.split}: random sample ({len(scan.sample):,} of'
      f' {scan.num_examples:,} images)',
      [(ex.data, _caption(ex, class_names)) for ex in scan.sample],
      out / f'{scan.split}_sample.png',
  )
  if scan.fixed:
    draw_contact_sheet(
        f'{scan.split}: images the build fixed, as stored'
        f' ({len(scan.fixed):,} of {scan.num_examples:,})',
        [
            (ex.data, _caption(ex, class_names, _fix_note(fixed_reasons, ex)))
            for ex in scan.fixed
        ],
        out / f'{scan.split}_fixed.png',
    )


def _fix_note(fixed_reasons: Mapping[str, str], example: Example) -> str:
  return f'fixed: {fixed_reasons[example.file_name]} → RGB JPEG'


def _caption(
    example: Example, class_names: ClassNames, note: str | None = None
) -> str:
  lines = [example.file_name, _truncate(class_names.short(example.label))]
  if note:
    lines += textwrap.wrap(note, _CAPTION_CHARS)
  return '\n'.join(lines)


def _truncate(text: str) -> str:
  if len(text) <= _CAPTION_CHARS:
    return text
  return text[: _CAPTION_CHARS - 1] + '…'


def _numpy(values: array.array) -> np.ndarray:
  """A view of an array.array (typecodes are numpy dtype codes too)."""
  return np.frombuffer(values, dtype=values.typecode)


def _thumbnail(data: bytes) -> np.ndarray:
  with PIL.Image.open(io.BytesIO(data)) as image:
    # Big JPEGs are decoded at 1/2 to 1/8 scale, much faster than in full.
    image.draft('RGB', (_TILE_PX, _TILE_PX))
    rgb = image.convert('RGB')
  rgb.thumbnail((_TILE_PX, _TILE_PX))
  return np.asarray(rgb)
