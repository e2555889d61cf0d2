"""State kept between builds (indexes, verified archives, kept-shard records):
a file of it that fails to load is ignored, said so once, and written again.

Each such file only saves work (re-indexing, re-hashing, re-writing a shard),
so a damaged one must cost that work and no more: raised, its error would
fail every later build until the user found and deleted the file. Valid
JSON of another shape counts as damage: readers check it (`load_json`'s
`is_valid`, `has_fields_of`) before they use it.
"""

from __future__ import annotations

import json
import logging
import typing
from collections.abc import Callable

from etils import epath

_log = logging.getLogger(__name__)


def discard(path: epath.PathLike, problem: object) -> None:
  """Says in one line that `path` is ignored, and why; deletes it, so that no
  later reader of this build says so again and the build writes it anew."""
  _log.warning('Ignoring %s (%s); the build will write it again.', path, problem)
  try:
    epath.Path(path).unlink(missing_ok=True)
  except OSError:
    pass  # A read-only cache: ignored again by the next build, no worse.


def describe(error: BaseException) -> str:
  """An exception as a short reason: its type and message."""
  return f'{type(error).__name__}: {error}'


def load_json(path: epath.PathLike, is_valid: Callable[[object], bool]) -> object | None:
  """The JSON value in `path`; None where there is none, or (discarded) where
  it does not load or `is_valid` refuses its shape."""
  try:
    value = json.loads(epath.Path(path).read_text())
  except FileNotFoundError:
    return None
  except Exception as e:  # pylint: disable=broad-except
    # Whatever the damage (cut off, garbled, not UTF-8, unreadable), the same.
    discard(path, describe(e))
    return None
  if not is_valid(value):
    discard(path, 'valid JSON, but not the shape this build writes')
    return None
  return value


def has_fields_of(value: object, cls: type) -> bool:
  """Whether `value`, loaded JSON, holds exactly the fields of the dataclass
  `cls`, each of its annotated type (see `_has_type`)."""
  fields = typing.get_type_hints(cls)
  return (
      isinstance(value, dict)
      and value.keys() == fields.keys()
      and all(_has_type(value[name], hint) for name, hint in fields.items())
  )


def _has_type(value: object, hint: object) -> bool:
  """Whether `value` is of type `hint`: a str, an int (in state files, a
  count, size or index: never negative, never a bool), or a dict of them."""
  if typing.get_origin(hint) is dict:
    key_type, value_type = typing.get_args(hint)
    return isinstance(value, dict) and all(
        _has_type(k, key_type) and _has_type(v, value_type)
        for k, v in value.items()
    )
  if hint is int:
    return type(value) is int and value >= 0
  return type(value) is hint
