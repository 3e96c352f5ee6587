"""Every DuckDB exception class becomes a sidecar error at the one mapper (sidecar/engine/errors.py)."""

from __future__ import annotations

import inspect
import pickle

import duckdb
import pytest

from sidecar.engine.errors import MAPPED_EXCEPTIONS, map_duckdb_error
from sidecar.errors import AccessDenied, Cancelled, InputError, InternalError, OutOfMemory, SidecarError, SqlError

DUCKDB_ERRORS = sorted(
    (c for c in vars(duckdb).values() if inspect.isclass(c) and issubclass(c, duckdb.Error)),
    key=lambda c: c.__name__,
)
"""Every exception class duckdb exports (duckdb.Warning, DB-API's warning, is never raised as an error)."""


def test_every_duckdb_exception_class_is_mapped() -> None:
    assert len(DUCKDB_ERRORS) > 25  # the scan sees DuckDB's classes, not an empty list
    assert [c.__name__ for c in DUCKDB_ERRORS if c not in MAPPED_EXCEPTIONS] == []


@pytest.mark.parametrize("cls", DUCKDB_ERRORS, ids=lambda c: c.__name__)
def test_each_class_maps_to_a_sidecar_error_that_pickles(cls: type[BaseException]) -> None:
    error = map_duckdb_error(cls("something went wrong"), sql="SELECT 1")
    assert isinstance(error, SidecarError) and error.code
    assert error.details["sql"] == "SELECT 1"
    if not isinstance(error, Cancelled):  # a cancel says who cancelled, not DuckDB's text
        assert "something went wrong" in error.message
    copy = pickle.loads(pickle.dumps(error))  # errors cross the worker boundary
    assert (type(copy), copy.message, copy.hint, copy.details) == (type(error), error.message, error.hint, error.details)


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (duckdb.ParserException, SqlError),
        (duckdb.CatalogException, SqlError),
        (duckdb.IOException, InputError),
        (duckdb.PermissionException, AccessDenied),
        (duckdb.OutOfMemoryException, OutOfMemory),
        (duckdb.InterruptException, Cancelled),
        (duckdb.InternalException, InternalError),
    ],
)
def test_the_most_specific_class_wins(cls: type[BaseException], expected: type[SidecarError]) -> None:
    assert type(map_duckdb_error(cls("x"))) is expected


def test_a_real_duckdb_failure_is_mapped_with_its_position() -> None:
    sql = "SELECT nope FROM range(1)"
    with pytest.raises(duckdb.Error) as raised:
        duckdb.connect().execute(sql)
    error = map_duckdb_error(raised.value, sql=sql)
    assert isinstance(error, SqlError) and "nope" in error.message
