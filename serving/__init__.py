"""TF Serving export of a trained model, and tools that use the export."""
