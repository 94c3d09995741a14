"""Process-wide tuning that `beehive run` applies: CPython's garbage collector.

Why: a cloudcore holds tens of thousands of parsed Kubernetes objects and builds one
message per object per node. With CPython's default first threshold (a young
collection every 700 new containers), parsing a list of 10,000 pods spends about
half its time in the collector, scanning objects that are all still alive. A larger
threshold makes collections rarer, not weaker: the same cyclic garbage is found, a
little later. Freezing after start moves what start-up built (modules, imports,
config) out of the generations every full collection walks.
"""

from __future__ import annotations

import gc

# `hive.gc_threshold` default: new containers between young collections.
DEFAULT_GC_THRESHOLD = 50_000


def tune_gc(threshold: int) -> None:
    """Set the young-generation threshold; 0 keeps the interpreter's own."""
    if threshold > 0:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)


def freeze_startup() -> None:
    """Collect once, then exempt every surviving object from later collections."""
    gc.collect()
    gc.freeze()
