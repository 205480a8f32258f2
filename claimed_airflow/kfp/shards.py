"""The KFP step of ``shard_indexes()``: one item per shard of the input step, the items of ``dsl.ParallelFor``.

Each item carries the shard's index and the upstream outputs the mapped step takes (``carry``), which the
loop's step reads as ``item.<name>``: the loop then takes no upstream task's output directly, which is also
what ``kfp.local`` (2.17.3) can run (it replaces such an input of every iteration by the loop item).
No ``from __future__ import annotations`` here: kfp reads the function's annotations as types.
"""


def claimed_shard_items(values: dict, carry: dict) -> list:
    """``[{"shard_index": i, **carry}, ...]`` for the shards an input step returned (its ``values`` output)."""
    indexes = values.get("shard_index")
    if not isinstance(indexes, list) or not indexes:
        raise SystemExit("shard_index: the input step returned no shards (is it an input with shards?)")
    return [{"shard_index": int(i), **carry} for i in indexes]


def shard_items_component(image: str, install_kfp_package: bool = False):
    """The lightweight component of :func:`claimed_shard_items` in ``image``."""
    import warnings

    from kfp import dsl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dsl.component(claimed_shard_items, base_image=image, install_kfp_package=install_kfp_package)
