"""Base classes of the project's builders."""

import inspect
from collections.abc import Mapping, Sequence

import tensorflow_datasets as tfds
from etils import epath

from gen_models.data import integrity
from gen_models.data.config import SOURCE_DIR_ENV


class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A GeneratorBasedBuilder that works without the optional `importlib_resources`.

    TFDS 4.9.10 locates a builder's code (to look for a checksums file next to it) through
    `importlib_resources`, which it does not install, whenever the builder lives in a package;
    this returns the builder's source file directly, as TFDS itself does for plain installs.
    """

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(inspect.getfile(cls))


class SourceFileBuilder(Builder, skip_registration=True):
    """A builder reading source files from `source_dir` (laid out as ../shared/data).

    `source_dir=None` downloads the files through TFDS' download manager instead. Every file
    is checked against the sha256 digests of its canonical copies before it is read (so when
    the dataset is prepared, not when prepared data is reused), unless verify_checksums=False.
    """

    def __init__(self, *, source_dir: str | None = None, verify_checksums: bool = True, **kwargs):
        super().__init__(**kwargs)
        self._source_dir = source_dir
        self.verify_checksums = verify_checksums
        # so that pickling keeps them
        self._original_state.update(source_dir=source_dir, verify_checksums=verify_checksums)

    def _fetch(
        self,
        dl_manager: tfds.download.DownloadManager,
        relpaths: Mapping[str, Sequence[str]],
        urls: Sequence[str],
        url_sha256: Sequence[str],
    ) -> epath.Path:
        """Returns the first of `<source_dir>/<relpath>` that exists, else the first URL that
        downloads (URLs are mirrors of the same file), once its sha256 is one of those accepted:
        `relpaths` maps each to its own, `url_sha256` lists the download's (empty: none is on
        record, and the caller checks what it decodes)."""
        if self._source_dir is not None:
            candidates = [epath.Path(self._source_dir) / p for p in relpaths]
            for path, accepted in zip(candidates, relpaths.values()):
                if path.exists():
                    return self._verified(path, accepted)
            raise FileNotFoundError(
                f'{self.name}: no source file at {", ".join(map(str, candidates))}. The folder '
                f'{self._source_dir!r} comes from config key dataset.source_dir or else the '
                f'environment variable {SOURCE_DIR_ENV}; point it at a folder laid out like '
                '../shared/data, or leave both empty to download the files.'
            )
        errors = []
        for url in urls:
            try:
                path = dl_manager.download(url)
            except Exception as e:  # pylint: disable=broad-except  (try the next mirror)
                errors.append(f'{url}: {e}')
                continue
            return self._verified(path, url_sha256)
        raise OSError(
            f'{self.name}: could not download the source file ({"; ".join(errors)}). Without '
            f'internet, set config key dataset.source_dir or {SOURCE_DIR_ENV} to a folder '
            f'holding {next(iter(relpaths))}.'
        )

    def _verified(self, path: epath.Path, accepted: Sequence[str]) -> epath.Path:
        if self.verify_checksums and accepted:
            integrity.verify(path, integrity.file_sha256(path), accepted)
        return path
