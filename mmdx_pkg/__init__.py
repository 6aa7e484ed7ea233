"""mmdx: a fully local multimodal diagnostic agent."""
__version__ = "0.1.0"
