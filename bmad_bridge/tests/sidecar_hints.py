"""Every hint text the sidecar's source can emit, as JSON: [{"file", "line", "hint"}].

Read by tests/cli-hints.test.js. A hint is a string (or f-string, its fields shown as X) given as
`hint=...`, assigned to a name holding "hint" (default_hint, `cls, hint = ...`), or stored under a
"hint" key. Usage: python tests/sidecar_hints.py <sidecar package dir>
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path


def text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = text(node.left), text(node.right)
        return None if left is None or right is None else left + right
    return None


def hint_nodes(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.keyword) and node.arg == "hint":
        return [node.value]
    if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        found = []
        for target in targets:
            if isinstance(target, ast.Name) and "hint" in target.id.lower():
                found.append(node.value)
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                for name, value in zip(target.elts, node.value.elts, strict=False):
                    if isinstance(name, ast.Name) and "hint" in name.id.lower():
                        found.append(value)
        return found
    if isinstance(node, ast.Dict):
        return [v for k, v in zip(node.keys, node.values, strict=False) if isinstance(k, ast.Constant) and k.value == "hint"]
    return []


def hints(root: Path) -> list[dict[str, object]]:
    out = []
    for file in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            for value in hint_nodes(node):
                # a conditional or other expression: every string inside it is a possible hint
                candidates = [value] if text(value) is not None else list(ast.walk(value))
                for candidate in candidates:
                    found = text(candidate)
                    if found and found.strip() and isinstance(candidate, ast.Constant | ast.JoinedStr | ast.BinOp):
                        out.append({"file": str(file.relative_to(root.parent)), "line": candidate.lineno, "hint": found})
    return out


if __name__ == "__main__":
    json.dump(hints(Path(sys.argv[1])), sys.stdout)
