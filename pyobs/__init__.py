"""pyobs-comm: the communication layer of a robotic observatory."""

__version__ = "0.1.0"
