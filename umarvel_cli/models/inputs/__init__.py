"""The one input pipeline: prompts from parts, images, tokenizer, collation, positions."""
