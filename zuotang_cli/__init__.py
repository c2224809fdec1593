"""zuotang: batch client for the Zuotang (佐糖) photo clarity / upscale API."""

__version__ = "0.1.0"
