"""Writes docs/errors.md: the table of the errors the package raises, from the code.

Every module of the package is imported and every subclass of
`imagenet2012_local.errors.Imagenet2012LocalError` is listed, one row each, so
the page cannot drift from the code (tests/test_error_docs.py checks that the
committed page is what this writes). Run from the repo root with the package
importable: `PYTHONPATH=. python scripts/make_error_docs.py`.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import imagenet2012_local
from imagenet2012_local import errors

OUTPUT = Path(__file__).resolve().parent.parent / 'docs' / 'errors.md'
_BASE = errors.Imagenet2012LocalError

_INTRO = f"""\
# Errors

<!-- Written by scripts/make_error_docs.py from the code; do not edit. -->

Every error the package raises for you to act on is an
`{_BASE.__module__}.{_BASE.__name__}`, so one `except` clause catches
them all:

```python
import tensorflow_datasets as tfds
from imagenet2012_local import errors

try:
  tfds.builder('imagenet2012_local').download_and_prepare()
except errors.Imagenet2012LocalError as e:
  print(e)  # What is wrong, then what to do.
```

Each message is two lines: what is wrong (naming the file, member or byte it is
about), then what to do. Some errors also keep a builtin base (the last
column), so `except` clauses written for that type still catch them.

| Error | What it means | Also a |
| --- | --- | --- |
"""


def _import_every_module() -> None:
  """Imports the package's modules, so that every error class is defined."""
  for module in pkgutil.walk_packages(
      imagenet2012_local.__path__, prefix=f'{imagenet2012_local.__name__}.'
  ):
    importlib.import_module(module.name)


def _subclasses(cls: type) -> set[type]:
  """Every class below `cls`, at any depth."""
  below = set(cls.__subclasses__())
  for subclass in list(below):
    below |= _subclasses(subclass)
  return below


def _row(cls: type) -> str:
  """One table row: the class, its docstring's first line, its builtin bases."""
  doc_lines = (cls.__doc__ or '').strip().splitlines()
  summary = doc_lines[0].replace('|', r'\|') if doc_lines else ''
  builtin_bases = ', '.join(
      f'`{base.__name__}`' for base in cls.__bases__ if base.__module__ == 'builtins'
  )
  return f'| `{cls.__module__}.{cls.__name__}` | {summary} | {builtin_bases} |\n'


def error_docs() -> str:
  """The text of docs/errors.md."""
  _import_every_module()
  classes = [
      cls
      for cls in _subclasses(_BASE)
      if cls.__module__.startswith(f'{imagenet2012_local.__name__}.')
  ]
  classes.sort(key=lambda cls: (cls.__module__, cls.__name__))
  return _INTRO + ''.join(_row(cls) for cls in classes)


def main() -> None:
  OUTPUT.write_text(error_docs())
  print(f'Wrote {OUTPUT}')


if __name__ == '__main__':
  main()
