"""Dialogue files written and shown: `hemadose replay --bless` writes the actual recommendation cards
into a dialogue file (`bless`), `--show` prints each exchange (`show`). Both read a finished replay's
result (bot/replay.py), which re-exports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from bot.replay import ReplayResult


def show(result: ReplayResult) -> str:
    """Each exchange of a replayed dialogue: the step number and what the user did, then the replies."""
    return "\n".join([f"== {result.title}", *result.transcript])


# --- bless: write the actual cards into a dialogue file ------------------------------------------


def _key(mapping: yaml.MappingNode, name: str) -> tuple[yaml.Node, yaml.Node] | None:
    return next(((k, v) for k, v in mapping.value if k.value == name), None)


def _end(node: yaml.Node) -> int:
    """The line after a node's last line (block collections end where the next token starts)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        mark = node.end_mark
        return int(mark.line if mark.column == 0 else mark.line + 1)
    children: list[yaml.Node] = []
    for item in node.value:
        children += list(item) if isinstance(item, tuple) else [item]
    return max((_end(child) for child in children), default=node.start_mark.line + 1)


def _inline(value: Any) -> str:
    dumped = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**9)
    return str(dumped).removesuffix("\n...\n").strip()


def _literal(key: str, texts: list[str], indent: int, chomp: str = "") -> list[str]:
    """`key: |` with the text as written (one card), or a list of them (several)."""
    pad = " " * indent

    def body(text: str, at: int) -> list[str]:
        return [f"{' ' * at}{line}\n" if line else "\n" for line in text.split("\n")]

    if len(texts) == 1:
        return [f"{pad}{key}: |{chomp}\n", *body(texts[0], indent + 2)]
    lines = [f"{pad}{key}:\n"]
    for text in texts:
        lines += [f"{pad}  - |{chomp}\n", *body(text, indent + 4)]
    return lines


Edit = tuple[int, int, list[str]]  # replace lines [first, end) with these


def _prune_contains(expect: yaml.MappingNode, cards: list[str], replies: str, notes: list[str]) -> list[Edit]:
    """Drop the `contains` fragments the card now asserts, and those no reply has any more."""
    found = _key(expect, "contains")
    if found is None:
        return []
    key, value = found

    def dropped(needle: str) -> bool:
        if any(needle in card for card in cards):
            return True
        if needle not in replies:
            notes.append(f"dropped a fragment no reply has any more: {needle!r}")
            return True
        return False

    whole = (key.start_mark.line, _end(value))
    if isinstance(value, yaml.ScalarNode):
        return [(*whole, [])] if dropped(str(value.value)) else []
    assert isinstance(value, yaml.SequenceNode)
    kept = [item for item in value.value if not dropped(str(item.value))]
    if not kept:
        return [(*whole, [])]
    if value.flow_style:
        pad = " " * key.start_mark.column
        return [(*whole, [f"{pad}contains: {_inline([str(item.value) for item in kept])}\n"])]
    return [(item.start_mark.line, _end(item), []) for item in value.value if item not in kept]


def bless(path: Path, result: ReplayResult) -> list[str]:
    """Write each step's actual recommendation cards into the file as `card:` (or refresh a whole
    `equals:`), keeping every other line as it is. Returns notes for the person blessing."""
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    root = yaml.compose(text)
    found = _key(root, "steps")
    if found is None or not isinstance(found[1], yaml.SequenceNode):
        raise ValueError(f"{path}: no steps")
    notes: list[str] = []
    edits: list[Edit] = []
    for number, step in enumerate(found[1].value, 1):
        cards = result.cards.get(number)
        if not cards:
            continue
        if not isinstance(step, yaml.MappingNode):
            raise ValueError(f"{path}: step {number} is not a mapping")
        if step.flow_style:  # `- {as: 1001, press: X}` on one line: written out as a block, the card added
            line = step.start_mark.line
            if step.end_mark.line != line:
                notes.append(f"step {number}: a flow step over several lines; not blessed")
                continue
            column = step.start_mark.column
            data = yaml.safe_load(lines[line][column:]) or {}
            block = [f"{' ' * column}{k}: {_inline(v)}\n" for k, v in data.items()]
            block[0] = f"{' ' * (column - 2)}- {block[0].lstrip()}"
            block += [f"{' ' * column}expect:\n", *_literal("card", cards, column + 2)]
            edits.append((line, line + 1, block))
            continue
        indent = step.value[0][0].start_mark.column
        expect_entry = _key(step, "expect")
        if expect_entry is None:
            edits.append((_end(step), _end(step), [f"{' ' * indent}expect:\n", *_literal("card", cards, indent + 2)]))
            continue
        expect_key, expect = expect_entry
        if isinstance(expect, yaml.SequenceNode):
            expect = next((e for e in expect.value if isinstance(e, yaml.MappingNode)), None)
            if expect is None:
                notes.append(f"step {number}: `expect` has no mapping to add the card to; not blessed")
                continue
        assert isinstance(expect, yaml.MappingNode)
        if expect.flow_style:  # rewritten as a block mapping, the card added
            data = yaml.safe_load(lines[expect_key.start_mark.line].split(":", 1)[1]) or {}
            if expect_key.start_mark.line != expect.end_mark.line:
                notes.append(f"step {number}: a flow `expect` over several lines; not blessed")
                continue
            data.pop("card", None)
            block = [f"{' ' * indent}expect:\n"]
            block += [f"{' ' * (indent + 2)}{k}: {_inline(v)}\n" for k, v in data.items()]
            edits.append((expect_key.start_mark.line, _end(expect), block + _literal("card", cards, indent + 2)))
            continue
        inner = expect.value[0][0].start_mark.column
        joined = "\n".join(result.replies.get(number, []))
        edits += _prune_contains(expect, cards, joined, notes)
        card = _key(expect, "card")
        equals = _key(expect, "equals")
        if card is not None:
            edits.append((card[0].start_mark.line, _end(card[1]), _literal("card", cards, inner)))
        elif equals is not None and result.replies[number][-1:] == cards[-1:] and len(cards) == 1:
            edits.append((equals[0].start_mark.line, _end(equals[1]), _literal("equals", cards, inner, "-")))
        else:
            edits.append((_end(expect), _end(expect), _literal("card", cards, inner)))
    for first, end, new in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        lines[first:end] = new
    path.write_text("".join(lines))
    return notes
