"""Transport adapters: each carries the core over one kind of wire, in a sibling package."""
