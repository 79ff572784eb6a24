"""Compile every Triton kernel for a CUDA architecture on a machine without a GPU.

The CPU interpreter runs the kernels' arithmetic but not the GPU compiler, so typing, layout and
shared-memory errors would only show on a GPU. `triton.compile` with an explicit `GPUTarget` runs
the whole pipeline down to a cubin (triton ships ptxas). Run it in a process where
TRITON_INTERPRET is unset: `python -m kernels.aot_check [arch]`.
"""

from __future__ import annotations

import os
import sys


def _specs(dtype: str, infonce_tiles: dict | None = None) -> list[tuple[str, object, dict, dict, dict]]:
    """(label suffix, kernel, signature, constexprs, options) at the configurations the wrappers launch
    (`infonce_tiles`: another InfoNCE tile configuration, in `infonce_triton.GPU_TILES`'s form)."""
    from kernels import distill_kl_triton as dk
    from kernels import infonce_triton as ik

    prec = "ieee" if dtype == "fp32" else None
    cfg = dict(infonce_tiles or (ik.FP32_GPU_TILES if dtype == "fp32" else ik.GPU_TILES))
    launch = {"num_warps": cfg.pop("num_warps"), "num_stages": cfg.pop("num_stages")}
    tiles = {**cfg, "UPCAST": False, "PRECISION": prec, "HAS_IDS": True}
    ids = {"labels_ptr": "*i64", "cid_ptr": "*i64", "qpos_ptr": "*i64", "tau_ptr": "*fp32"}
    dims = {"B": "i32", "N": "i32", "D": "i32", "P": "i32"}
    emb = {"q_ptr": f"*{dtype}", "c_ptr": f"*{dtype}"}
    iemb = {**emb, "s_ptr": f"*{dtype}"}
    strides = {
        "stride_qm": "i32",
        "stride_cn": "i32",
        "stride_sm": "i32",
        "stride_pm": "i32",
        "stride_pp": "i32",
    }
    fwd = {
        **iemb,
        **ids,
        "lse_part_ptr": "*fp32",
        "pos_part_ptr": "*fp32",
        **dims,
        "per_split": "i32",
        **strides,
    }
    grad = {**iemb, **ids, "lse_ptr": "*fp32", "g_ptr": "*fp32", "out_ptr": f"*{dtype}", **dims, **strides}
    grad["stride_om"] = "i32"
    blocks = dk._blocks(50, 3584)
    dist = {**emb, "idx_ptr": "*i64", "t_ptr": "*fp32", "tau_ptr": "*fp32"}
    dist_strides = {"stride_qm": "i32", "stride_cn": "i32", "stride_im": "i32", "stride_tm": "i32"}
    dfwd = {**dist, "rows_ptr": "*fp32", "lse_ptr": "*fp32", "K": "i32", "D": "i32", **dist_strides}
    dbwd = {**dist, "lse_ptr": "*fp32", "g_ptr": "*fp32", "dq_ptr": "*fp32", "dc_ptr": "*fp32"}
    dbwd = {**dbwd, "K": "i32", "D": "i32", **dist_strides, "stride_dqm": "i32", "stride_dcn": "i32"}
    fused, scores = {**tiles, "FROM_SCORES": False}, {**tiles, "FROM_SCORES": True}
    return [
        ("", ik._fwd_kernel, fwd, fused, launch),
        ("", ik._grad_kernel, grad, fused, launch),
        ("[scores]", ik._fwd_kernel, fwd, scores, launch),
        ("[scores]", ik._grad_kernel, grad, scores, launch),
        ("", dk._fwd_kernel, dfwd, blocks, {}),
        ("", dk._bwd_kernel, dbwd, {"NEED_C": True, **blocks}, {}),
    ]


def compile_all(arch: int = 90, dtype: str = "bf16", infonce_tiles: dict | None = None) -> dict[str, int]:
    """Kernel name → shared memory bytes of its cubin for sm_`arch`; raises on any compile error."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("unset TRITON_INTERPRET: the interpreter replaces the kernels it would compile")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    out = {}
    for suffix, fn, sig, consts, opts in _specs(dtype, infonce_tiles):
        signature = {**sig, **dict.fromkeys(consts, "constexpr")}
        compiled = triton.compile(
            ASTSource(fn=fn, signature=signature, constexprs=consts),
            target=GPUTarget("cuda", arch, 32),
            options=opts,
        )
        out[f"{fn.fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}{suffix}"] = compiled.metadata.shared
    return out


if __name__ == "__main__":
    arch = int(sys.argv[1]) if len(sys.argv) > 1 else 90
    for name, shared in compile_all(arch).items():
        print(f"{name}: sm_{arch} ok, {shared} B shared memory")
