"""faiss index build/load, shard-streaming exact search, top-k merge."""
