"""The one error type users catch, and the one shape of its messages.

Every error the build raises for a user to act on is an
`Imagenet2012LocalError` (some also keep a builtin base, e.g. `OSError`, so
older `except` clauses still catch them). Its message has two lines: what is
wrong, then what to do.
"""

from __future__ import annotations


class Imagenet2012LocalError(Exception):
  """Something the user can fix: the message says what is wrong and what to do."""


def two_lines(what: str, how_to_fix: str) -> str:
  """`what` as a sentence, then on its own line `how_to_fix`."""
  return f'{what}.\n{how_to_fix}'
