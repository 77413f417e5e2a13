from browser import browser  # noqa: F401  (fixture)
from tools_support import bus, transport  # noqa: F401  (fixtures)
