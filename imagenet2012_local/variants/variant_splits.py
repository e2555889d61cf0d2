"""The splits a variant builder builds: those of its own that the manual dir holds.

A variant reads some of the archives (the subsets: train and validation; ReaL:
validation); the others in the manual dir are left unread, and a manual dir
without any of the variant's archives fails in two lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from imagenet2012_local.sources import archive_facts
from imagenet2012_local import errors
from imagenet2012_local.sources import split_sources
from imagenet2012_local import tfds_internals
from imagenet2012_local.sources import source as source_lib
from imagenet2012_local.sources import storage


def of_variant(
    sources: Mapping[str, source_lib.Source],
    splits: Sequence[str],
    variant: str,
    manual_dir: str,
) -> dict[str, source_lib.Source]:
  """The `sources` of `splits`, in that order.

  Raises:
    split_sources.MissingArchivesError: none of `splits`' archives is in the
      manual dir.
  """
  chosen = {split: sources[split] for split in splits if split in sources}
  if not chosen:
    names = ' and '.join(archive_facts.BY_SPLIT[split].file_name for split in splits)
    found = ', '.join(storage.name_of(source.name) for source in sources.values())
    raise split_sources.MissingArchivesError(errors.two_lines(
        f'{variant} is built from {names}, and {manual_dir} holds only {found}',
        f'Download {names} from {archive_facts.DOWNLOAD_PAGE} (free'
        f' registration) into that folder, or pass the folder that holds'
        f' {"it" if len(splits) == 1 else "them"} as --manual_dir.',
    ))
  return chosen


class VariantSplits:
  """Mixin of a variant builder (before the main builder in its bases): its
  `_split_sources` are those of `VARIANT_SPLITS` (`of_variant`)."""

  VARIANT_SPLITS: tuple[str, ...] = ()

  def _split_sources(self, dl_manager) -> dict[str, source_lib.Source]:
    config = self.builder_config
    return of_variant(
        super()._split_sources(dl_manager),
        self.VARIANT_SPLITS,
        f'{self.name}/{config.name}' if config else self.name,
        tfds_internals.manual_dir_as_given(dl_manager),
    )
