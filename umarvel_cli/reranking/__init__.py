"""Reranking: the per-task query sampler, the teacher-score stage and U-MARVEL+ fusion."""
