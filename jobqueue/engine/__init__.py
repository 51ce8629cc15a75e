"""The engine: Redis key layout, Lua scripts (one per state transition), job value objects and
connections. It imports only ``redis`` and the standard library, never Django.
"""
