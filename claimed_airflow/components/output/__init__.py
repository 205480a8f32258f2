"""CLAIMED components: output."""
