from tools_support import bus, transport  # noqa: F401  (fixtures)
