"""Contact sheets: captioned thumbnails of a split's sampled and fixed images."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

# Figures made without pyplot render PNGs with Agg and never open a display.
from matplotlib.figure import Figure
import numpy as np
import PIL.Image

from imagenet2012_local.report import layout
from imagenet2012_local.report.classes import ClassNames
from imagenet2012_local.report.records import Example
from imagenet2012_local.report.scan import SplitScan

_COLUMNS = 8
_MIN_COLUMNS = 4
_TILE_PX = 160
_CAPTION_CHARS = 30  # Wider captions run into the next tile.


def draw_split_sheets(
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
      out / layout.sample_file(scan.split),
  )
  if scan.fixed:
    draw_contact_sheet(
        f'{scan.split}: images the build fixed, as stored'
        f' ({len(scan.fixed):,} of {scan.num_examples:,})',
        [
            (ex.data, _caption(ex, class_names, _fix_note(fixed_reasons, ex)))
            for ex in scan.fixed
        ],
        out / layout.fixed_file(scan.split),
    )


def draw_contact_sheet(
    title: str, tiles: Sequence[tuple[bytes, str]], path: Path
) -> None:
  """Writes a grid of thumbnails of the JPEG `tiles`, each with its caption."""
  # At least a few columns, so that the title of a short sheet still fits.
  columns = min(_COLUMNS, max(len(tiles), _MIN_COLUMNS))
  rows = max(-(-len(tiles) // columns), 1)
  tile_in = _TILE_PX / layout.DPI
  fig = Figure(
      figsize=(columns * tile_in, rows * tile_in * 1.35 + 0.4),
      dpi=layout.DPI,
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


def _thumbnail(data: bytes) -> np.ndarray:
  with PIL.Image.open(io.BytesIO(data)) as image:
    # Big JPEGs are decoded at 1/2 to 1/8 scale, much faster than in full.
    image.draft('RGB', (_TILE_PX, _TILE_PX))
    rgb = image.convert('RGB')
  rgb.thumbnail((_TILE_PX, _TILE_PX))
  return np.asarray(rgb)
