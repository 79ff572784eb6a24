"""The training loop, its objectives, stages, checkpoint/resume and schedules."""
