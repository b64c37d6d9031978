"""The built-in scenarios (TOML files in this package): the tech note's cases."""
