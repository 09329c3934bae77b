"""Stand-alone measurement tools (each with a `python -m bench.<name>` entry shim); they may import
bench's layers below them, and nothing in bench imports them."""
