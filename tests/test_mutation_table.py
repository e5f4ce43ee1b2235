"""tools/mutation_check.py stays in step with the code: every one-line bug of its table applies
exactly once to today's source (a refactor that moves the line makes the mutation STALE, and the
check would silently test nothing for it)."""
import os.path as osp

from uninet_mm.apis import load_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_every_mutation_applies_once_and_changes_the_line():
    tool = load_tool('mutation_check')
    assert len(tool.MUTATIONS) >= 7
    stale = []
    for m in tool.MUTATIONS:
        with open(osp.join(ROOT, m['file'])) as f:
            source = f.read()
        if source.count(m['old']) != 1 or m['old'] == m['new']:
            stale.append(f"{m['id']}: {source.count(m['old'])} matches in {m['file']}")
    assert not stale, stale
