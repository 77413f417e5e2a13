"""One file per transport. A scenario module defines (see local.py, the smallest complete one):

* ``NAME``, ``TITLE``, ``IN_PROCESS`` (all roles in one process), ``IMPLS`` (of "ours", "core"),
  ``IMPORT`` (impl → module whose import time is measured), ``GOALS`` (checked in the report);
* ``available(impl)`` → None or the reason it cannot run (driver side, e.g. module not there yet);
* ``environment(run)`` → async context manager yielding JSON-able params for the workers
  (a throw-away server, a private bus), or ``{}``;
* ``make_comm(impl, name, env)`` → a comm for a module called ``name`` (worker side);
* ``floor(run, env)`` → call metrics of the raw library on the same environment (driver side;
  in-process scenarios: all metrics), optional; ``FLOOR_EVENT_ROLES`` = {variant: (subscriber role,
  publisher role)} of the floor's event measurements, which the driver runs like ours (see
  roles.SubscriberLog); the first variant fills the floor column, others get rows of their own;
* ``role_<x>(ctx)`` → extra worker roles, e.g. the floor's.

Scenario modules must not import ``pyobs`` at module level: workers of both venvs import them.
"""
