"""The members of a tar that is not plain, read through Python's tarfile.

`tar_reader` reads plain tars (every ImageNet tar) header by header itself;
any other tar (skipped members, extended headers, damage) is read here, by
tarfile, each member sorted by `tar_headers.skip_reason` and the naming rule,
and tarfile's errors turned into ones that name the archive, the member and
the byte (`tar_checks`).
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import MutableMapping
from typing import BinaryIO

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import tar_checks
from imagenet2012_local.sources import tar_headers

_READ_SIZE = 1 << 20  # Large reads: tarfile's 10 KiB default costs ~14M calls on ImageNet.


def members(
    place: tar_checks.TarPlace,
    lookup: BinaryIO,
    naming: archive_facts.Naming,
    skipped: MutableMapping[str, str],
) -> list[tuple[str, int, int]]:
  """(name, data offset in the tar, size) of each member named like
  `naming`, the tar at `place` read through `lookup`. The others:

  - those `tar_headers.skip_reason` gives a reason for are skipped and
    recorded in `skipped` ({member: why}, under the inner tar's name); their
    data is never read, and no member name is ever used as a path;
  - any other name fails the build: members must be named exactly like the
    images, with no folder part.
  At the end, checks that the tar ends properly (`TarPlace.end_problem`).

  Raises:
    tar_checks.ArchiveError: the tar is damaged or holds a member of an
      unknown name.
  """
  prefix = f'{place.inner_name}/' if place.inner_name else ''
  found = []
  last: tarfile.TarInfo | None = None  # For messages.
  tar = None
  try:
    tar = tarfile.open(
        fileobj=_Slice(lookup, place.start, place.size), mode='r:',
        bufsize=_READ_SIZE,
    )
    for member in tar:
      reason = tar_headers.skip_reason(member)
      if reason:
        skipped[prefix + member.name] = reason
      elif not naming.matches(member.name) or member.issparse():
        raise place.error(
            f'member {member.name!r} (header at byte'
            f' {place.start + member.offset:,}) is not a file named like'
            f' {naming.shape}',
            how_to_fix=(
                f'Use the official {place.archive.name}, or re-pack it with'
                f' only {naming.shape} files, at the top level (no'
                ' folders).'
            ),
        )
      else:
        found.append((member.name, member.offset_data, member.size))
      last = member
    end = tar.offset
  except tarfile.TarError as e:
    if tar is None:
      lookup.seek(place.start)
      looks_like = tar_checks.what_it_looks_like(lookup.read(tar_checks.BLOCK_SIZE))
      raise place.error(
          f'not a tar archive{looks_like}: no valid tar header at byte'
          f' {place.start:,} ({e})'
      ) from e
    if last and tar.offset > place.size:
      raise _cut_off(place, last) from e
    raise place.error(
        f'unreadable tar header at byte {place.start + tar.offset:,}'
        f'{_after(last)} ({e})'
    ) from e
  finally:
    if tar is not None:
      tar.close()
  problem = place.end_problem(lookup, end, _after(last))
  if problem:
    raise place.error(problem)
  return found


def _cut_off(
    place: tar_checks.TarPlace, member: tarfile.TarInfo
) -> tar_checks.ArchiveError:
  start = place.start + member.offset_data
  return place.error(
      f'member {member.name!r} (bytes {start:,} to {start + member.size:,})'
      f' is cut off: the tar ends at byte {place.start + place.size:,}'
  )


def _after(last: tarfile.TarInfo | None) -> str:
  return f', after member {last.name!r}' if last else ''


class _Slice:
  """A read-only, seekable view of [start, start + size) of a file.

  An inner tar is read through it so that a damaged inner tar cannot run on
  into the next member of the outer tar.
  """

  def __init__(self, f: BinaryIO, start: int, size: int):
    self._f = f
    self._start = start
    self._size = size
    self._pos = 0

  def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
    base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}
    self._pos = base[whence] + pos
    return self._pos

  def tell(self) -> int:
    return self._pos

  def read(self, size: int = -1) -> bytes:
    end = self._size if size < 0 else min(self._size, self._pos + size)
    if end <= self._pos:
      return b''
    self._f.seek(self._start + self._pos)
    data = self._f.read(end - self._pos)
    self._pos += len(data)
    return data
