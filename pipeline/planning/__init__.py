"""Planning and costing: pure functions over the plan's values (``models`` is the leaf)."""
