"""The analyzer's Redis adapters."""
