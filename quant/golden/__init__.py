"""Golden integer functions, one per hardware unit (see docs/integer_semantics.md)."""
