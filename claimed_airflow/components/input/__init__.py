"""CLAIMED components: input."""
