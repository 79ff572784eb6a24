"""The training loop, distributed helpers, checkpoint/resume and schedules."""
