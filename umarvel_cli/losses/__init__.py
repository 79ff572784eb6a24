"""One loss per file: InfoNCE (hard negatives, false-negative masks, cross-device) and distillation KL."""
