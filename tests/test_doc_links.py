"""Every relative link of README.md and docs/*.md leads somewhere: the file
exists, and a `#anchor` names one of its headings as GitHub slugs them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent
_PAGES = [_ROOT / 'README.md', *sorted((_ROOT / 'docs').glob('*.md'))]
# [text](target) and [text](target "title"); images too.
_LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
_FENCE = re.compile(r'^\s*(```|~~~)')
_HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')


def _prose_lines(text: str) -> list[str]:
  """The lines of a Markdown page outside fenced code blocks."""
  lines, in_code = [], False
  for line in text.splitlines():
    if _FENCE.match(line):
      in_code = not in_code
    elif not in_code:
      lines.append(line)
  return lines


def github_slug(heading: str) -> str:
  """The anchor GitHub gives a heading: lower case, inline code marks and
  punctuation dropped (but `-` and `_`), each space a `-`."""
  text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # A link's text only.
  text = text.lower().replace('`', '')
  text = ''.join(c for c in text if c.isalnum() or c in ' -_')
  return text.replace(' ', '-')


def anchors(page: Path) -> set[str]:
  """The anchors of `page`'s headings, repeats numbered as GitHub does."""
  seen: dict[str, int] = {}
  found = set()
  for line in _prose_lines(page.read_text()):
    match = _HEADING.match(line)
    if not match:
      continue
    slug = github_slug(match.group(2))
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    found.add(slug if count == 0 else f'{slug}-{count}')
  return found


def _relative_links(page: Path) -> list[str]:
  return [
      target
      for line in _prose_lines(page.read_text())
      for target in _LINK.findall(line)
      if not re.match(r'[a-z]+:', target)  # http:, https:, mailto:
  ]


@pytest.mark.parametrize('page', _PAGES, ids=lambda p: str(p.relative_to(_ROOT)))
def test_every_relative_link_resolves(page):
  broken = []
  for target in _relative_links(page):
    path_part, _, anchor = target.partition('#')
    linked = (page.parent / path_part).resolve() if path_part else page
    if not linked.exists():
      broken.append(f'{target}: no such file')
    elif anchor and linked.suffix == '.md' and anchor not in anchors(linked):
      broken.append(f'{target}: no heading with that anchor in {linked.name}')
  assert not broken, f'{page.name}: ' + '; '.join(broken)


def test_the_slugs_follow_github():
  """Cases taken from headings GitHub renders."""
  assert github_slug('Cold, with the page cache capped: the real job') == (
      'cold-with-the-page-cache-capped-the-real-job'
  )
  assert github_slug('The `tfds build` flags') == 'the-tfds-build-flags'
  assert github_slug('Set up (on the bundled dummy data)') == (
      'set-up-on-the-bundled-dummy-data'
  )
  assert github_slug('Index → plan → write') == 'index--plan--write'


def test_a_broken_anchor_is_caught(tmp_path):
  page = tmp_path / 'page.md'
  page.write_text('# Interrupted builds\n\n```\n# not a heading\n```\n')
  assert anchors(page) == {'interrupted-builds'}
