"""Batch-norm layers."""
