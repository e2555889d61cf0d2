"""docs/development.md's map names every module of the package, in its folder."""

from __future__ import annotations

import re
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_PACKAGE = _ROOT / 'imagenet2012_local'


def _map_rows() -> dict[str, str]:
  """{folder: its row's text} of the map's table."""
  text = (_ROOT / 'docs' / 'development.md').read_text()
  rows = {}
  for line in text.splitlines():
    match = re.match(r'\| (top|`(\w+)/`) \|', line)
    if match:
      rows[match.group(2) or ''] = line
  return rows


def test_every_module_is_in_its_folders_row():
  rows = _map_rows()
  missing = []
  for module in sorted(_PACKAGE.rglob('*.py')):
    if module.name == '__init__.py' or 'checksums' in module.parts:
      continue
    folder = module.parent.relative_to(_PACKAGE).as_posix()
    folder = '' if folder == '.' else folder
    if folder == 'report':
      continue  # One row for the report's own package.
    if f'`{module.name}`' not in rows.get(folder, ''):
      missing.append(module.relative_to(_PACKAGE).as_posix())
  assert not missing, f'docs/development.md lacks {missing}'


def test_every_module_the_map_names_exists():
  for folder, row in _map_rows().items():
    for name in re.findall(r'`(\w+\.py)`', row):
      assert (_PACKAGE / folder / name).is_file(), f'{folder}/{name}'
