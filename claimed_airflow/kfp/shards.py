"""The KFP step of ``shard_indexes()``: the input step's ``shard_index`` list, the items of ``dsl.ParallelFor``.

No ``from __future__ import annotations`` here: kfp reads the function's annotations as types.
"""


def claimed_shard_indexes(values: dict) -> list:
    """The shard indexes an input step returned (its ``values`` output), as a list output."""
    indexes = values.get("shard_index")
    if not isinstance(indexes, list) or not indexes:
        raise SystemExit("shard_index: the input step returned no shards (is it an input with shards?)")
    return [int(i) for i in indexes]


def shard_list_component(image: str, install_kfp_package: bool = False):
    """The lightweight component of :func:`claimed_shard_indexes` in ``image``."""
    import warnings

    from kfp import dsl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dsl.component(claimed_shard_indexes, base_image=image, install_kfp_package=install_kfp_package)
