"""Charts of a scanned dataset: examples per class, and image sizes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# Figures made without pyplot render PNGs with Agg and never open a display.
from matplotlib import ticker
from matplotlib.figure import Figure
import numpy as np

from imagenet2012_local.report import layout
from imagenet2012_local.report.classes import ClassStats
from imagenet2012_local.report.scan import SplitScan, as_numpy


def draw_class_counts(stats: Sequence[ClassStats], path: Path) -> None:
  """Writes a bar chart of examples per class index, one panel per split."""
  fig = Figure(
      figsize=(12, 3.2 * len(stats)), dpi=layout.DPI, layout='constrained'
  )
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
      ('width (px)', lambda s: as_numpy(s.widths)),
      ('height (px)', lambda s: as_numpy(s.heights)),
      ('stored JPEG (KB)', lambda s: as_numpy(s.sizes) / 1e3),
  )
  fig = Figure(figsize=(13, 3.6), dpi=layout.DPI, layout='constrained')
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
