"""CLAIMED components: filter."""
