"""The docs stay true to the code: the worked example quotes its files verbatim, links lead
somewhere, the README stays a short guide."""

from __future__ import annotations

import re

from tests.conftest import REPO

DOCS = REPO / 'docs'


def test_the_worked_example_quotes_its_two_files_verbatim():
    sources = [
        (REPO / 'gen_models' / 'models' / 'autoencoder.py').read_text(),
        (REPO / 'configs' / 'autoencoder_mnist.py').read_text(),
    ]
    page = (DOCS / 'adding_a_family.md').read_text()
    blocks = re.findall(r'```python\n(.*?)```', page, flags=re.S)
    assert len(blocks) >= 4
    for block in blocks:
        assert any(block in source for source in sources), block[:200]


def test_relative_links_of_the_readme_and_docs_exist():
    for page in [REPO / 'README.md', *DOCS.glob('*.md')]:
        for target in re.findall(r'\]\(([^)#:]+)(?:#[^)]*)?\)', page.read_text()):
            assert (page.parent / target).exists(), f'{page.name}: {target}'


def test_the_readme_is_a_short_guide():
    assert len((REPO / 'README.md').read_text().splitlines()) <= 200
