"""cancelguard: keeps Amazon MFN sellers safe from the Cancellation Rate."""

__version__ = "0.1.0"
