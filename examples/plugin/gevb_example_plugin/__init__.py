"""gevb's example plugin: a learning rule, a data set and an architecture, each registered by its own module when
gevb first reads its registries (the entry points of pyproject.toml)."""
