"""Operator tools on top of the comm: the `pyobs-comm` command (cli), joining a bus without a module
(connect) and the view of the fleet it shares with the web dashboard (fleet)."""
