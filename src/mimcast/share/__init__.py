"""Sharing and deploying models: the Hugging Face Hub's layout, and ONNX."""
