"""CLAIMED components: metric."""
