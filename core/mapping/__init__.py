"""Category mapping: where a platform's categories (or the master's nodes) go in another taxonomy (pure)."""
