"""One loss per file: InfoNCE (hard negatives, false-negative masks, cross-device) and distillation KL.

Importing this package imports torch but never triton (the fused kernels load it on first use).
"""

from umarvel_cli.losses.distill_kl import distill_kl_loss
from umarvel_cli.losses.ids import content_id, content_ids, positive_id_matrix
from umarvel_cli.losses.infonce import info_nce_loss

__all__ = ["content_id", "content_ids", "distill_kl_loss", "info_nce_loss", "positive_id_matrix"]
