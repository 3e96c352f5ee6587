"""Hostile protocol lines, generated with knowledge of the protocol's structure.

Each `Case` is a few raw lines plus what the sidecar must answer: every request whose `id` is
an integer or a string, in a line that is well-formed JSON, gets exactly one answer with that
id (`expect`); ids in lines that may or may not decode (nesting near the decoder's limit, byte
mutations) get at most one (`maybe`). The choices come from a `random.Random`, or from anything
with its `random`/`randint` methods (the coverage-guided run feeds atheris' data through one),
so a seed reproduces a corpus exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from sidecar.fuzz_lines import Case, Choices, Obj, Raw, effective, encode, load_param_schemas, validity

__all__ = ["Case", "CaseGenerator", "Choices", "Obj", "Raw", "encode", "load_param_schemas"]

UNSAFE_METHODS = frozenset({"exit", "shutdown"})
"""Methods that end the run when called right; the generator sends them only with bad params."""

SLOW_SQL = "SELECT count(*) FROM range(3000000000) t(i) WHERE hash(i) % 7 = 1"
QUICK_SQL = ("SELECT 1 AS x", "SELECT * FROM range(5)", "SELECT [1, 2] AS l, {'a': NULL} AS s", "SELEC 1")


class CaseGenerator:
    """Builds `Case`s; ids come from one counter, so each is unique over a whole run."""

    def __init__(self, rng: Choices, methods: Sequence[str], schemas: dict[str, dict[str, Any]]) -> None:
        self.rng = rng
        self.methods = [m for m in methods if m not in ("$/cancelRequest", "exit")]  # exit ignores params
        self.schemas = schemas
        self._ids = itertools.count(1)
        self._kinds: list[tuple[str, Callable[[], Case]]] = [
            ("params", self.wrong_params),
            ("params", self.wrong_params),
            ("params", self.wrong_params),
            ("envelope", self.envelope),
            ("envelope", self.envelope),
            ("nesting", self.deep_nesting),
            ("numbers", self.huge_numbers),
            ("tokens", self.bad_tokens),
            ("text", self.bad_text),
            ("text", self.bad_text),
            ("batch", self.batch),
            ("cancel", self.cancels),
            ("mutation", self.mutation),
        ]

    # -- choices -------------------------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, items: Sequence[Any]) -> Any:
        return items[self.rng.randint(0, len(items) - 1)]

    def new_id(self) -> str | int:
        n = next(self._ids)
        shape = self.rng.randint(0, 4)
        if shape == 0:
            return -n  # negative
        if shape == 1:
            return 10**30 + n  # past 64 bits
        if shape == 2:
            return f"f{n}"
        if shape == 3:
            return f"\u00e9\u4e2d\U0001f600-{n}\u0000"  # any Unicode, NUL included, is a fine id
        return 2**40 + n  # never one of the small ids a client counts up from

    def request(
        self, method: str, params: Any = None, *, id: Any = "new", extra: Sequence[tuple[str, Any]] = ()
    ) -> tuple[Obj, Any]:
        """A request envelope (and its id, or None for a notification)."""
        if id == "new":
            id = self.new_id()
        pairs: list[tuple[str, Any]] = [("jsonrpc", "2.0")]
        if id is not None:
            pairs.append(("id", id))
        pairs.append(("method", method))
        if params is not None:
            pairs.append(("params", params))
        pairs.extend(extra)
        return Obj(tuple(pairs)), id

    def case(self, kind: str, *messages: Any, mutated: bool = False) -> Case:
        """A case of one line per message, with its expectations derived from the structure."""
        case = Case(kind, [], mutated=mutated)
        for message in messages:
            case.lines.append(encode(message))
            self._expect(case, message)
        return case

    def _expect(self, case: Case, message: Any) -> None:
        verdict = validity(message)
        if verdict is False:
            return
        members = message if isinstance(message, list) else [message]
        if isinstance(message, list) and not 0 < len(message) <= 10_000:
            return  # an empty or oversized batch is refused whole
        for member in members:
            present, id = effective(member, "id")
            if not present or isinstance(id, bool) or not isinstance(id, (int, str)):
                continue
            (case.expect if verdict else case.maybe).append(id)

    def next_case(self) -> Case:
        return self.pick(self._kinds)[1]()

    # -- values --------------------------------------------------------------------------

    def any_value(self, depth: int = 0) -> Any:
        kinds = ["null", "bool", "int", "float", "str", "big"] + (["list", "obj"] if depth < 3 else [])
        kind = self.pick(kinds)
        if kind == "null":
            return None
        if kind == "bool":
            return self.chance(0.5)
        if kind == "int":
            return self.rng.randint(-(2**63), 2**64)
        if kind == "float":
            return self.pick([0.5, -1e308, 1e-320, 3.0])
        if kind == "big":
            return Raw(b"9" * self.rng.randint(19, 400), True)
        if kind == "str":
            return self.pick(
                ["", "x", "SELECT 1", "../../etc/passwd", "a" * 2000, "\u0000", "\U0001f600", "*.csv"]
            )
        if kind == "list":
            return [self.any_value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return {f"k{i}": self.any_value(depth + 1) for i in range(self.rng.randint(0, 4))}

    def from_schema(self, schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> Any:
        """A value that fits `schema` (the subset msgspec emits), or near it."""
        if "$ref" in schema:
            return self.from_schema(root["$defs"][schema["$ref"].rsplit("/", 1)[1]], root, depth)
        if "anyOf" in schema:
            return self.from_schema(self.pick(schema["anyOf"]), root, depth)
        if "enum" in schema:
            return self.pick(schema["enum"])
        kind = schema.get("type")
        if kind == "string":
            return self.pick(["ok_1", "x", "data.csv", "out.parquet", self.pick(QUICK_SQL)])
        if kind == "integer":
            low, high = schema.get("minimum", -5), schema.get("maximum", 10**6)
            return self.pick([low, high, self.rng.randint(low, min(high, low + 1000))])
        if kind == "boolean":
            return self.chance(0.5)
        if kind == "null":
            return None
        if kind == "array":
            return [
                self.from_schema(schema.get("items", {}), root, depth + 1)
                for _ in range(self.rng.randint(0, 3))
            ]
        if kind == "object" and depth < 4:
            props = schema.get("properties", {})
            return {
                k: self.from_schema(v, root, depth + 1)
                for k, v in props.items()
                if k in schema.get("required", ()) or self.chance(0.3)
            }
        return self.any_value(depth)

    # -- case kinds ----------------------------------------------------------------------

    def wrong_params(self) -> Case:
        """Params for a served method: near-valid, with one field wrong, missing, unknown or retyped."""
        method = self.pick(self.methods)
        schema = self.schemas.get(method, {})
        body = schema["$defs"][schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
        params = self.from_schema(body, schema) if body.get("properties") else {}
        if not isinstance(params, dict):
            params = {}
        how = self.rng.randint(0, 6)
        fields = list(body.get("properties", {}))
        if how == 0 and fields:
            params[self.pick(fields)] = self.any_value()
        elif how == 1 and params:
            params.pop(self.pick(list(params)))
        elif how == 2:
            params[self.pick(["sqll", "unknown", "", "\u0000", "progress_token"])] = self.any_value()
        elif how == 3:
            params = self.any_value()
        elif how == 4 and method == "query.run":
            params = {"sql": self.pick(QUICK_SQL), "max_rows": self.rng.randint(0, 3)}
        if method == "query.run" and isinstance(params, dict) and isinstance(params.get("partition"), dict):
            params["partition"]["parts"] = self.rng.randint(0, 3)  # parts cost a job each: keep the run short
        if method in UNSAFE_METHODS:  # only ever refused: params these methods do not take
            params = {"surely_not_a_param": 1}
        if method == "initialize" and isinstance(params, dict):
            params.pop("overrides", None)  # a valid override or config_dir would change the run under test
            params.pop("config_dir", None)
        message, _ = self.request(method, params, id=None if self.chance(0.15) else "new")
        return self.case("params", message)

    def envelope(self) -> Case:
        """Ids of every JSON type, missing or repeated members, wrong jsonrpc/method types."""
        id = self.pick(
            [None, True, False, 1.5, -0.0, [1], {"a": 1}, "omit", "new", "new", Raw(b"1e400", False)]
        )
        method = self.pick(
            [
                "config.get",
                "system.resources",
                "nope",
                "",
                7,
                None,
                ["config.get"],
                "$/anything",
                "rpc.discover",
            ]
        )
        pairs: list[tuple[str, Any]] = [("jsonrpc", self.pick(["2.0", "2.0", "1.0", 2, None]))]
        if id != "omit":
            pairs.append(("id", self.new_id() if id == "new" else id))
        pairs.append(("method", method))
        if self.chance(0.3):  # a repeated key: the last one counts
            key = self.pick(["id", "method", "jsonrpc", "params"])
            value = self.new_id() if key == "id" else self.pick(["config.get", "2.0", {}, None])
            pairs.append((key, value))
        if self.chance(0.3):
            pairs.append(("params", self.any_value()))
        if self.chance(0.2):
            pairs = [p for p in pairs if p[0] != self.pick(["jsonrpc", "method", "id"])]
        return self.case("envelope", Obj(tuple(pairs)))

    def deep_nesting(self) -> Case:
        depth = self.pick([10, 200, 900, 1_100, 5_000, 100_000, self.rng.randint(1, 3_000)])
        opener, closer, levels = self.pick([(b"[", b"]", 1), (b'{"a":', b"}", 1), (b'[{"a":', b"}]", 2)])
        closed = self.chance(0.5)
        nesting = depth * levels + 2  # within a request's envelope and params
        valid: bool | None = None  # near the decoder's limit (about 1,000 levels), it depends on the stack
        if not closed or nesting > 1_100:
            valid = False
        elif nesting < 800:
            valid = True
        body = opener * depth + b"1" + (closer * depth if closed else b"")
        where = self.rng.randint(0, 2)
        if where == 0:
            return self.case("nesting", Raw(body, valid))
        message, _ = self.request(
            "query.run", {"sql": "SELECT 1", "params": Raw(body, valid)} if where == 1 else Raw(body, valid)
        )
        return self.case("nesting", message)

    def huge_numbers(self) -> Case:
        number = self.pick(
            [
                Raw(b"1" * self.rng.randint(20, 4_300), True),
                Raw(b"-" + b"9" * 4_301, False),
                Raw(b"1e400", False),
                Raw(b"-1e-400", True),
                Raw(b"123456789012345678901234567890.5e10", True),
            ]
        )
        where = self.rng.randint(0, 2)
        if where == 0:
            return self.case("numbers", Obj((("jsonrpc", "2.0"), ("id", number), ("method", "config.get"))))
        method = self.pick(["query.run", "jobs.status", "cleanup", "dataset.analyze"])
        key = self.pick(["max_rows", "timeout_ms", "job_max_age_ms", "sample_rows", "sql"])
        message, _ = self.request(
            method, {key: number} if where == 1 else {"sql": "SELECT ?", "params": [number]}
        )
        return self.case("numbers", message)

    def bad_tokens(self) -> Case:
        token = self.pick(
            [
                b"NaN",
                b"Infinity",
                b"-Infinity",
                b"nan",
                b"undefined",
                b"'x'",
                b"0x1F",
                b"01",
                b"+1",
                b".5",
                b"1.",
                b"tru",
            ]
        )
        message, _ = self.request(self.pick(self.methods), {"value": Raw(token, False)})
        return self.case("tokens", message)

    def bad_text(self) -> Case:
        """Lone surrogates, invalid UTF-8, NUL bytes raw and escaped, in keys, values and methods."""
        text = self.pick(
            [
                (b'"\\ud800"', False),
                (b'"\\udc00x"', False),
                (b'"\\ud83d\\ude00"', True),
                (b'"\xed\xa0\x80"', False),
                (b'"\xff\xfe"', False),
                (b'"\xc0\x80"', False),
                (b'"a\x00b"', False),
                (b'"a\\u0000b"', True),
                (b'"\xe2\x82"', False),
                (b'"\\u00"', False),
                (b'"\x1f"', False),
                (b'"\\x41"', False),
            ]
        )
        raw = Raw(*text)
        where = self.rng.randint(0, 3)
        message: Obj | Raw
        if where == 0:
            message, _ = self.request(self.pick(self.methods), {"sql": raw, "path": raw})
        elif where == 1:
            message = Obj((("jsonrpc", "2.0"), ("id", self.new_id()), ("method", raw)))
        elif where == 2:
            message = Raw(
                b'{"jsonrpc":"2.0","id":'
                + encode(self.new_id())
                + b',"method":"config.get","params":{'
                + text[0]
                + b":1}}",
                text[1],
            )
        else:
            message = Raw(b"\x00" * self.rng.randint(1, 50), False)
        return self.case("text", message)

    def batch(self) -> Case:
        size = self.pick([0, 1, 2, 5, 50, 50, 500, 2_000, 10_001])
        if size > 10_000:  # refused whole, unread: its members need not be costly to build
            return self.case(
                "batch", Raw(b"[" + b'{"jsonrpc":"2.0","id":1,"method":"config.get"},' * size + b"1]", True)
            )
        members: list[Any] = []
        for _ in range(size):
            shape = self.rng.randint(0, 5)
            if shape == 0:
                members.append(self.any_value(2))
            elif shape == 1:
                members.append(self.request("config.get", id=None)[0])
            elif shape == 2:
                members.append(self.request(self.pick(self.methods), {"x": self.any_value(2)})[0])
            else:  # config.get answers several KiB: in a batch of thousands, a cheap answer
                cheap = ["nope", "jobs.status"] if size > 100 else ["config.get", "system.resources", "nope"]
                members.append(self.request(self.pick(cheap))[0])
        if size and size < 100 and self.chance(0.3):
            members.append(self.request("query.run", {"sql": self.pick(QUICK_SQL)})[0])
        return self.case("batch", members)

    def cancels(self) -> Case:
        """A running query, then its cancel (as request or notification, alone or in a batch) among others."""
        slow, slow_id = self.request("query.run", {"sql": SLOW_SQL, "timeout_ms": 5_000})
        target = self.pick([slow_id, slow_id, slow_id, self.new_id(), None, [slow_id], {"id": slow_id}, 1.5])
        cancel, _ = self.request("$/cancelRequest", {"id": target}, id=None if self.chance(0.5) else "new")
        between = [self.request("config.get")[0] for _ in range(self.rng.randint(0, 2))]
        messages: list[Any] = [slow, [*between, cancel]] if self.chance(0.3) else [slow, *between, cancel]
        if target != slow_id:  # the query must not outlive its case: it would hold a job slot for seconds
            messages.append(self.request("$/cancelRequest", {"id": slow_id}, id=None)[0])
        return self.case("cancel", *messages)

    def mutation(self) -> Case:
        """A valid request with a few bytes flipped, cut or repeated."""
        message, _ = self.request(
            self.pick(["config.get", "query.run", "jobs.status"]), {"sql": "SELECT 1", "job_id": "j1"}
        )
        data = bytearray(encode(message))
        for _ in range(self.rng.randint(1, 4)):
            at = self.rng.randint(0, len(data) - 1)
            how = self.rng.randint(0, 3)
            if how == 0:
                data[at] = self.rng.randint(0, 255)
            elif how == 1:
                del data[at:]
                if not data:
                    data = bytearray(b"{")
            elif how == 2:
                data[at:at] = data[at : at + self.rng.randint(1, 8)]
            else:
                data[at:at] = bytes([self.pick(b'{}[]",:\\')])
        line = bytes(data).replace(b"\n", b" ").replace(b"\r", b" ")
        case = Case("mutation", [line], mutated=True)
        try:
            decoded = msgspec.json.decode(line)
        except Exception:
            return case
        for member in decoded if isinstance(decoded, list) else [decoded]:
            if (
                isinstance(member, dict)
                and isinstance(member.get("id"), (int, str))
                and not isinstance(member.get("id"), bool)
            ):
                case.maybe.append(member["id"])
        return case
