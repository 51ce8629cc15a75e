"""How the engine talks to Redis: clients from URLs, the Lua scripts, and the calls' transport."""
