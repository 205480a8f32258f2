"""CLAIMED components: train."""
