"""The tree resolver: which path each file is shown under (README, "The file tree")."""

import pytest
from tests.unit.tree_cases import CASES, Case

from pairpilot.sync.tree import resolve


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_resolver_answers_each_case(case: Case) -> None:
    tree = resolve(case.wanted, case.folders)
    assert tree.files == case.files
    assert list(tree.files.values()) == sorted(case.files.values())
    assert tree.folders == case.tree_folders
