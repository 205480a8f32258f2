"""CLAIMED components."""
