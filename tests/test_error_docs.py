"""docs/errors.md is the table scripts/make_error_docs.py writes from the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from imagenet2012_local import errors
from imagenet2012_local.engine import external_sort
from imagenet2012_local.engine import publish
from imagenet2012_local.layouts import tfrecords

_SCRIPT = Path(__file__).resolve().parent.parent / 'scripts' / 'make_error_docs.py'


def _script():
  spec = importlib.util.spec_from_file_location('make_error_docs', _SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_the_committed_error_docs_are_up_to_date():
  script = _script()
  assert script.OUTPUT.read_text() == script.error_docs(), (
      'docs/errors.md is out of date: run PYTHONPATH=. python scripts/make_error_docs.py'
  )


@pytest.mark.parametrize(
    'error_type, builtin_base',
    [
        (tfrecords.CorruptRecordError, ValueError),
        (external_sort.ReadChangedError, ValueError),
        (publish.OutputExistsError, FileExistsError),
    ],
)
def test_errors_under_the_one_base_keep_their_builtin_base(error_type, builtin_base):
  """So that `except` clauses written for the builtin type still catch them."""
  error = error_type('what is wrong.\nWhat to do.')
  assert isinstance(error, errors.Imagenet2012LocalError)
  assert isinstance(error, builtin_base)
  name = f'`{error_type.__module__}.{error_type.__name__}`'
  rows = [row for row in _script().error_docs().splitlines() if name in row]
  assert len(rows) == 1 and rows[0].endswith(f'| `{builtin_base.__name__}` |')
