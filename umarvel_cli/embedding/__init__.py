"""The `embed` stage: encode queries or candidates into resumable embedding shards."""

from umarvel_cli.embedding.run import run_embed

__all__ = ["run_embed"]
