"""The thresholds file's `scaling_triggers.executor_scaling` group: when a split job goes to Ray.

It is a rule for the job runner, not an alert: the monitor (sidecar.monitor.triggers) skips the
group. Each of its `hand_off_triggers` is `{condition, action: run_on_ray, address?}` with one of
two conditions:

- `split_parts > N`: an attempt split into more than N parts (up front, or on the retry ladder's
  split rung) runs its parts on Ray;
- `estimate_machine_percent > P`: a job whose up-front estimate needs more than P% of the machine
  budget runs its parts on Ray.

Everything else is an error at its file and line, with the closest known name; the group is then
not applied (a hand-off rule half applied would surprise more than none).
"""

from __future__ import annotations

import re
from typing import Any

from sidecar.config.settings import HandOff, to_executor
from sidecar.config.validate import Ctx
from sidecar.config.yamlload import MarkedDict, MarkedList
from sidecar.errors import did_you_mean

__all__ = [
    "HAND_OFF_ACTIONS",
    "HAND_OFF_GROUP",
    "HAND_OFF_MEASURES",
    "HAND_OFF_PATH",
    "parse_hand_off_condition",
    "read_hand_off",
]

HAND_OFF_GROUP = "executor_scaling"
"""The group of `scaling_triggers` that holds the hand-off rule (and nothing the monitor reads)."""
HAND_OFF_PATH = f"scaling_triggers.{HAND_OFF_GROUP}"
"""Its key path, under which the thresholds file's `positions` keep its line."""
_LIST = "hand_off_triggers"
HAND_OFF_MEASURES = {
    "split_parts": "the parts a split attempt runs in (the estimate's, the request's, or the ladder's)",
    "estimate_machine_percent": "the up-front estimate's memory need, in percent of the machine budget",
}
HAND_OFF_ACTIONS = ("run_on_ray",)
_KEYS = ("condition", "action", "address")
_CONDITION = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|>=|==|<|>|=)\s*([0-9]+(?:\.[0-9]+)?)\s*(%?)\s*$")
_HINT = (
    "Write `condition: \"split_parts > 16\"` or `condition: \"estimate_machine_percent > 100\"` with "
    "`action: run_on_ray` (docs/architecture/distributed-execution.md#handing-jobs-to-ray-automatically)."
)


def parse_hand_off_condition(text: str) -> tuple[str, float] | str:
    """(measure, the number it must exceed), or why the condition is refused.

    >>> parse_hand_off_condition("split_parts > 16"), parse_hand_off_condition("estimate_machine_percent > 80%")
    (('split_parts', 16.0), ('estimate_machine_percent', 80.0))
    >>> parse_hand_off_condition("split_part > 4")
    "unknown measure 'split_part'; did you mean 'split_parts'?"
    >>> parse_hand_off_condition("split_parts >= 4")
    "a hand-off fires above a number: write 'split_parts > N', not '>='"
    """
    m = _CONDITION.match(text)
    if m is None:
        return f"'{text.strip()}' is not '<measure> > <number>'"
    measure, op, number, percent = m.groups()
    if measure not in HAND_OFF_MEASURES:
        return f"unknown measure '{measure}'{did_you_mean(measure, HAND_OFF_MEASURES)}"
    if op != ">":
        return f"a hand-off fires above a number: write '{measure} > N', not '{op}'"
    if measure == "split_parts" and (percent or "." in number):
        return f"split_parts counts parts: write a whole number, not '{number}{percent}'"
    return measure, float(number)


def read_hand_off(scaling: Any, ctx: Ctx) -> HandOff | None:
    """The hand-off rule of `scaling_triggers` (raw, with its marks), None when it has none; every
    problem is an error in `ctx` at its line, and the rule is then None."""
    if not isinstance(scaling, MarkedDict) or HAND_OFF_GROUP not in scaling:
        return None
    path = HAND_OFF_PATH
    errors = len(ctx.diagnostics)
    group = scaling[HAND_OFF_GROUP]
    for key in group if isinstance(group, MarkedDict) else ():
        if key != _LIST:
            unknown = f"unknown key '{key}'{did_you_mean(key, [_LIST])}"
            ctx.add("error", group.key_pos[key], f"{path}.{key}", unknown, _HINT)
    items = group.get(_LIST) if isinstance(group, MarkedDict) else None
    if not isinstance(items, MarkedList):
        expected = f"expected `{_LIST}:` with a list of triggers"
        ctx.add("error", scaling.value_pos[HAND_OFF_GROUP], path, expected, _HINT)
        return None
    found: dict[str, float] = {}
    addresses: dict[str | None, str] = {}
    for i, item in enumerate(items):
        where = f"{path}.{_LIST}[{i}]"
        if not isinstance(item, MarkedDict) or "condition" not in item or "action" not in item:
            ctx.add("error", items.item_pos[i], where, "a hand-off trigger needs a condition and an action", _HINT)
            continue
        for key in item:
            if key not in _KEYS:
                unknown = f"unknown key '{key}'{did_you_mean(key, _KEYS)}"
                ctx.add("error", item.key_pos[key], f"{where}.{key}", unknown, f"A trigger takes {', '.join(_KEYS)}.")
        action = str(item["action"])
        if action not in HAND_OFF_ACTIONS:
            ctx.add("error", item.value_pos["action"], f"{where}.action",
                    f"unknown hand-off action '{action}'{did_you_mean(action, HAND_OFF_ACTIONS)}", _HINT)
        parsed = parse_hand_off_condition(str(item["condition"]))
        if isinstance(parsed, str):
            measures = "; ".join(f"{k}: {v}" for k, v in HAND_OFF_MEASURES.items())
            ctx.add("error", item.value_pos["condition"], f"{where}.condition", f"hand-off not applied: {parsed}",
                    f"The measures: {measures}.")
        else:
            measure, number = parsed
            found[measure] = min(number, found.get(measure, number))  # the first to fire decides
        if "address" in item:
            address = _address(item["address"])
            if address is None or isinstance(address, ValueError):
                ctx.add("error", item.value_pos["address"], f"{where}.address",
                        f"invalid Ray address {item['address']!r}: {address or 'not a Ray cluster'}",
                        "Write ray (a local head) or ray:<address>, such as ray:head:6379.")
            else:
                addresses.setdefault(address[1], f"{where}.address")
    if len(addresses) > 1:
        ctx.add("error", group.key_pos[_LIST], f"{path}.{_LIST}",
                f"the triggers name {len(addresses)} Ray clusters; one sidecar joins one",
                "Give every trigger the same address, or name it on one trigger only.")
    if len(ctx.diagnostics) > errors:
        return None
    ctx.positions[path] = scaling.key_pos[HAND_OFF_GROUP]
    parts = found.get("split_parts")
    return HandOff(
        max_local_parts=int(parts) if parts is not None else None,
        max_machine_percent=found.get("estimate_machine_percent"),
        address=next(iter(addresses), None),
    )


def _address(raw: Any) -> tuple[str, str | None] | ValueError | None:
    """("ray", the address or None for a local head), the parse error, or None for `local`."""
    try:
        kind, _, address = to_executor(raw).partition(":")
    except ValueError as exc:
        return exc
    return (kind, address or None) if kind == "ray" else None
