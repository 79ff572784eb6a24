"""How many retrieved candidates of a run lie outside the pool each query should have searched.

A given run is scored as it is; this count tells when it was made against another pool (a global
run evaluated as local, or a pool from the wrong split), which would make the numbers incomparable.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from umarvel_cli.artifacts import read_table
from umarvel_cli.data.mbeir.tasks import MBEIRSpec
from umarvel_cli.evaluation.prepared import PreparedSplit


def rows_outside_pool(run: pa.Table, prepared: PreparedSplit, spec: MBEIRSpec, pool: str) -> dict[str, int]:
    """Per task: run rows whose candidate is not in the task's local pool (local) or in the union of
    the split's local pools (global). Tasks unknown to the spec are not checked."""
    pools = read_table(prepared.data, "pools", columns=["pool", "did"])
    known = {t.stem: t.pool(prepared.split) for t in spec.tasks}

    def members(names: list[str]) -> pa.Array:
        return (
            pools.filter(pc.is_in(pools.column("pool"), value_set=pa.array(names)))
            .column("did")
            .combine_chunks()
        )

    union = members(sorted(set(known.values()))) if pool == "global" else None
    out: dict[str, int] = {}
    for task in prepared.tasks:
        if task not in known:
            continue
        rows = run.filter(
            pc.is_in(run.column("qid"), value_set=pa.array(prepared.qids_of(task), pa.string()))
        )
        allowed = union if union is not None else members([known[task]])
        out[task] = rows.num_rows - int(pc.sum(pc.is_in(rows.column("did"), value_set=allowed)).as_py() or 0)
    return out
