"""The disk kinds side by side: each run's read limit named, the goal's
ratios (issue 22), and one table with a row per disk kind for the README and
docs/performance.md (`python -m bench.report --by-disk results-*.json`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bench import throttle

# The goal (issue 22) compares these, wall time / wall time of the
# same run: (variant, baseline).
_GOAL_RATIOS = (
    ('ours', 'floor-verified'),
    ('ours-noverify', 'floor-verified'),
    ('ours-rebuild', 'floor'),
)
# The variants whose wall times the `--by-disk` table shows.
_BY_DISK = (
    'floor', 'floor-verified', 'upstream', 'ours', 'ours-noverify',
    'ours-rebuild',
)


def goal_ratios(
    summary: Mapping[str, Mapping[str, object]],
) -> dict[str, float]:
  """The goal's ratios ('variant / baseline' -> wall / baseline wall) of
  the variants that ran with their baseline."""
  ratios = {}
  for name, base in _GOAL_RATIOS:
    wall = summary.get(name, {}).get('wall_s')
    base_wall = summary.get(base, {}).get('wall_s')
    if wall and base_wall:
      ratios[f'{name} / {base}'] = wall / base_wall
  return ratios


def disk(config: Mapping[str, object]) -> str:
  """The disk kind the reads were limited as, e.g. 'standard-cloud (375
  reads/s, 60 MB/s)'; results from before the throttle are unlimited."""
  mbs = config.get('read_mbs')
  limit = throttle.ReadLimit(
      config.get('read_iops'), int(mbs * 1e6) if mbs else None
  )
  if not (limit.iops or limit.bytes_per_s):
    return "unthrottled (this VM's disk)"
  return f'{config.get("disk_kind") or "custom"} ({limit.describe()})'


def by_disk(
    runs: Sequence[tuple[Mapping[str, object], Mapping[str, Mapping]]],
) -> str:
  """One Markdown table, a row per harness run (per disk kind), from each
  run's (config, summary): the wall seconds of the floors, upstream and
  ours, and the goal's ratios."""
  ratio_titles = [f'{name} / {base}' for name, base in _GOAL_RATIOS]
  header = [
      'disk kind (read limit)', *(f'{name} s' for name in _BY_DISK),
      *ratio_titles,
  ]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for config, summary in runs:
    walls = [summary.get(name, {}).get('wall_s') for name in _BY_DISK]
    ratios = goal_ratios(summary)
    cells = (
        [disk(config)]
        + ['-' if wall is None else f'{wall:.1f}' for wall in walls]
        + [f'{ratios[t]:.2f}' if t in ratios else '-' for t in ratio_titles]
    )
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join([
      *lines,
      '',
      'Wall seconds (medians), and the goal\'s ratios of wall times. Each'
      ' row from one harness run: its floors and upstream measured in that'
      ' run, under the same read limit. The variants: bench/README.md.',
      '',
  ])
