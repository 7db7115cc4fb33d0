"""The offer query language (`q=` on the search API), pure Python."""

from broker.query.language import FIELDS, OPERATORS, Clause, FieldSpec, Query, QueryError, parse

__all__ = ["FIELDS", "OPERATORS", "Clause", "FieldSpec", "Query", "QueryError", "parse"]
