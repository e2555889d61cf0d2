"""The variants' figures from saved results: subsets, WebDataset, downsampled.

`python -m bench.variant_report results-*.json` prints, for each file that
ran them, Markdown tables of:
- each subset against the full build under the same gate (`subset-1pct`
  against `ours`, `subset-1pct-noverify` against `ours-noverify`): the ratio
  of wall times next to the ratio of bytes written, and the fixed seconds of
  a line through the full build and the subsets (wall = fixed + bytes / rate),
  what a subset pays whatever it writes: start-up, indexing every train
  header, and with the gate on the digest of every archive byte;
- `wds` against `ours` (and `-noverify` against `-noverify`);
- each downsampled size on one CPU against Pillow's decode and resize of the
  same images on the same CPU: images per second per core.
Ratios only compare variants of one file: one harness run, one set of
conditions.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bench import report

_Summary = Mapping[str, Mapping[str, float]]


def _ok(summary: _Summary, *names: str) -> bool:
  return all(summary.get(name, {}).get('runs') for name in names)


def subsets(summary: _Summary) -> list[str]:
  """Rows: a subset's wall and output against the full build's."""
  rows = []
  for suffix in ('', '-noverify'):
    full = f'ours{suffix}'
    if not _ok(summary, full):
      continue
    names = [f'subset-{c}{suffix}' for c in ('1pct', '10pct')]
    names = [n for n in names if _ok(summary, n)]
    points = [summary[n] for n in (full, *names)]
    if len(points) > 1:
      # Least squares through (output GB, wall s): wall = fixed + GB / rate.
      slope, fixed = np.polyfit(
          [p['output_gb'] for p in points], [p['wall_s'] for p in points], 1
      )
    for name in (full, *names):
      entry, base = summary[name], summary[full]
      rows.append(
          f'| {name} | {entry["wall_s"]:.1f} | {entry.get("builder_s", 0):.1f}'
          f' | {entry["output_gb"]:.2f}'
          f' | {entry["wall_s"] / base["wall_s"]:.3f}'
          f' | {entry["output_gb"] / base["output_gb"]:.3f}'
          + (f' | {fixed:.1f} | {1 / slope:.2f}' if len(points) > 1 else ' | - | -')
          + ' |'
      )
  if not rows:
    return []
  return [
      '| variant | wall s | builder s | output GB | wall / full | output / full'
      ' | fixed s | GB/s beyond |',
      '|---|---|---|---|---|---|---|---|',
      *rows,
  ]


def webdataset(summary: _Summary) -> list[str]:
  """Rows: WebDataset's build against the TFDS build, gate on and off."""
  rows = [
      f'| {wds} | {summary[wds]["wall_s"]:.1f} | {summary[ours]["wall_s"]:.1f}'
      f' | {summary[wds]["wall_s"] / summary[ours]["wall_s"]:.3f} |'
      for wds, ours in (('wds', 'ours'), ('wds-noverify', 'ours-noverify'))
      if _ok(summary, wds, ours)
  ]
  if not rows:
    return []
  return [
      '| variant | wall s | TFDS build wall s | wall / TFDS build |',
      '|---|---|---|---|',
      *rows,
  ]


def downsampled(summary: _Summary, images: int) -> list[str]:
  """Rows: images per second on one CPU, ours against Pillow's."""
  rows = []
  for size in (8, 16, 32, 64):
    config = f'{size}x{size}'
    ours, pillow = f'resized-{config}', f'pillow-resize-{config}'
    png = f'pillow-resize-png-{config}'
    if not _ok(summary, ours):
      continue
    for name in (ours, pillow, png):
      if not _ok(summary, name):
        continue
      entry, base = summary[name], summary[ours]
      by_cpu = images / entry['cpu_s'] if entry.get('cpu_s') else None
      base_by_cpu = images / base['cpu_s'] if base.get('cpu_s') else None
      cells = [
          name,
          f'{entry["wall_s"]:.1f}',
          f'{entry["cpu_s"]:.1f}' if by_cpu else '-',
          f'{images / entry["wall_s"]:.0f}',
          f'{by_cpu:.0f}' if by_cpu else '-',
          f'{entry["wall_s"] / base["wall_s"]:.2f}',
          f'{base_by_cpu / by_cpu:.2f}' if by_cpu and base_by_cpu else '-',
      ]
      rows.append('| ' + ' | '.join(cells) + ' |')
  if not rows:
    return []
  # On one pinned CPU, wall seconds are that core's seconds, unless other
  # processes share it; CPU seconds count only the variant's own.
  return [
      '| variant | wall s | CPU s | images/s (wall) | images per CPU s'
      ' | ours / it, images/s | ours / it, images per CPU s |',
      '|---|---|---|---|---|---|---|',
      *rows,
  ]


def probe_notes(runs: Sequence[Mapping[str, object]]) -> list[str]:
  """Per run of our builders, how its disk probe chose to read (rows saved
  before the harness recorded it have no 'probe')."""
  lines = []
  for run in runs:
    choices = run.get('probe')
    if choices:
      short = sorted({c.split(' (')[0] for c in choices})
      lines.append(
          f'- {run["variant"]} #{run["repeat"]} ({run["wall_s"]:.1f} s):'
          f' {"; ".join(short)}'
      )
  return ['Disk probe\'s choices:', '', *lines, ''] if lines else []


def render(results: Mapping[str, object]) -> str:
  """The variants' tables of one results file; '' if it ran none."""
  summary = report.summarize(results['runs'], results['config']['variants'])
  tables = [
      table
      for table in (
          subsets(summary),
          webdataset(summary),
          downsampled(summary, results['archives']['images']),
      )
      if table
  ]
  if not tables:
    return ''
  name = Path(results['archives']['directory']).name
  lines = [f'### {name}', '']
  for table in tables:
    lines += [*table, '']
  lines += probe_notes(results['runs'])
  return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m bench.variant_report', description=__doc__.splitlines()[0]
  )
  parser.add_argument('results', nargs='+', type=Path, help='results-*.json')
  args = parser.parse_args(argv)
  for path in args.results:
    section = render(json.loads(path.read_text()))
    if section:
      print(section)
  return 0


if __name__ == '__main__':
  sys.exit(main())
