"""CLAIMED components: visualize."""
