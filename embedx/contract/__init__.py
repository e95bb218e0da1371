"""The plugin contract: what ``embedx.plugin_api`` re-exports (embedder, hooks, options, errors, shared names)."""
