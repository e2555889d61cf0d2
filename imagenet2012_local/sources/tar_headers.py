"""What one 512-byte tar header says about its member.

`tar_reader` reads the headers of plain tars itself, because Python's tarfile
decodes every field of each header into a `TarInfo` where the index needs a
name and a size, 1.3 M times for ImageNet. A header is one 512-byte block
before the member's data; these are the byte ranges of it read here (the
others, such as mode, owner and times, are not needed):

- `[0, 100)` name: ASCII, padded with NUL bytes when shorter than 100.
- `[124, 136)` size of the data in bytes: octal digits, ended by a NUL or a
  space. GNU tar writes sizes too big for it in base 256 instead; such a
  header is not plain.
- `[148, 156)` checksum: in octal, the sum of all 512 bytes of the header
  (unsigned), with these 8 bytes counted as spaces.
- `[156]` type: `'0'` or NUL for a regular file; anything else (directory,
  link, device, and the extra headers of long names or pax attributes) is not
  plain.
- `[257, 265)` magic and version: `ustar\\0` then `00` in POSIX headers,
  `ustar  \\0` in GNU ones.
- `[345, 500)` name prefix, POSIX headers only: a path to put before the name
  (GNU uses these bytes for other fields). A header that has one is not
  plain.

A plain header is one a regular file has when its name fits in the name field
and its size in octal: every member of the ImageNet tars. For anything else
`plain_file_name` or `file_size` gives None, and the tar is left to tarfile;
`skip_reason` then sorts its members.
"""

from __future__ import annotations

import os
import re
import tarfile

_NAME = slice(0, 100)
_SIZE = slice(124, 136)
_CHECKSUM = slice(148, 156)
_TYPE = 156
_MAGIC = slice(257, 265)
_POSIX_MAGIC = slice(257, 263)
_PREFIX_START = 345

_USTAR_MAGICS = (b'ustar\x0000', b'ustar  \x00')  # POSIX, GNU.
_REGULAR_FILE_TYPES = (ord('0'), 0)
# Sum of the checksum field's 8 bytes when counted as spaces.
_CHECKSUM_AS_SPACES = 8 * ord(' ')
_OCTAL_FIELD = re.compile(rb' *([0-7]+) *(?:\0.*)?', re.DOTALL)


def plain_file_name(header: bytes) -> str | None:
  """The member name in `header`, if it is a regular file's plain header whose
  checksum is right; else None."""
  if header[_TYPE] not in _REGULAR_FILE_TYPES or header[_MAGIC] not in _USTAR_MAGICS:
    return None
  if header[_POSIX_MAGIC] == b'ustar\x00' and header[_PREFIX_START] != 0:
    return None  # A POSIX name prefix: long names are left to tarfile.
  checksum = octal(header[_CHECKSUM])
  stored_bytes = sum(header) - sum(header[_CHECKSUM])
  if checksum is None or checksum != stored_bytes + _CHECKSUM_AS_SPACES:
    return None
  name = header[_NAME].split(b'\0', 1)[0]
  return name.decode('ascii') if name.isascii() else None


def file_size(header: bytes) -> int | None:
  """The data size in `header`; None unless it is written in octal."""
  return octal(header[_SIZE])


def octal(field: bytes) -> int | None:
  """A header's number field: octal digits ended by NUL or space; None if it
  is not (e.g. GNU's base-256 for huge values)."""
  match = _OCTAL_FIELD.fullmatch(field)
  return int(match[1], 8) if match else None


def skip_reason(member: tarfile.TarInfo) -> str | None:
  """Why a member read by tarfile is skipped as not an image, or None: it is
  not a regular file, or it is hidden (the last part of its name starts with
  '.', as `.DS_Store` and `._*` do)."""
  if member.isdir():
    return 'a directory'
  if member.issym():
    return 'a symbolic link'
  if member.islnk():
    return 'a hard link'
  if not member.isfile():
    return 'a device or FIFO'
  if os.path.basename(member.name).startswith('.'):
    return 'a hidden file'
  return None
