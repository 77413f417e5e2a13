"""pyobs-core-side code of the interop tests.

Imported ONLY by pyobs-core's interpreter (its own venv, its own processes): everything here is
written against pyobs-core 2.19.1's API, never against ours. The test process never imports it.
"""
